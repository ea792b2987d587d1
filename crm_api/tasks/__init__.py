"""Tasks, their reminders, and the rules that create tasks by themselves."""
