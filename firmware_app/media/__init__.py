"""Media: audio formats and MP3, DTMF and silence detection, fax images and PDFs.

Pure transformations over bytes and arrays where possible; device I/O (ALSA) lives in its
own module so importing media stays light.
"""
