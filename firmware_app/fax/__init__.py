"""Fax on the lines: Class 1 and Class 2/2.0 drivers that run the pure engines over a `Line`
on a fax session thread, and the fax service (receive, store, notify, send queue).

Nothing here runs on a line's worker thread: the line is only used through its futures and
its data-mode byte pipe.
"""
