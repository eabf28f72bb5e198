"""The benchmark tasks: one module per task, each registering itself with @register_task.

A module added to this package is found on the first registry lookup; nothing else needs editing.
"""
