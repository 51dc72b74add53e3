"""What a run leaves for people: its summary as plain data (summary.py), what pytest-html
shows beyond its table (html.py, report.css), the postmortem draft (postmortem.py), and the
cause of a check that raised (causes.py).

May import: the core; never the rules, the drill or the plugin (it reads their verdicts as data)."""
