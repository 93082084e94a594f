"""Calls end to end: the call session that runs a plan, and the voice channels it talks through.

`voice.py` holds the contracts: a `VoiceChannel` (how a session plays, records and hears keys on
one answered call, whatever the line type) and a `GreetingSource` (where greeting audio comes
from). Line-specific channels (analog V.253 DLE stream, GSM sound card, GSM PCM over USB)
implement the first; the greetings service implements the second.
"""
