"""Pure, sans-I/O protocol engines: bytes in, events out.

Nothing in this package opens a port, starts a thread, sleeps or reads a clock:
time is always passed in as an argument.
"""
