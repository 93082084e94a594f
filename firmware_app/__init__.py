"""Frontdesk: a small office's receptionist on a Raspberry Pi.

The daemon answers a phone line through a USB analog or GSM modem, follows the business
hours, forwards calls, takes voicemail, receives SMS and faxes and emails what nobody took.
"""

__version__ = "0.1.0"
