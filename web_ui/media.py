"""Media downloads: voicemail audio and fax PDFs, by their store reference, for logged-in owners.

The path comes only from `services.history.media_file(ref)`, which refuses anything that is
not a media reference inside the data dir; the type comes from the extension, never the file.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, request, send_file
from werkzeug.wrappers import Response

from .security import services

bp = Blueprint("media", __name__)

TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "pdf": "application/pdf",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "png": "image/png",
}
INLINE = {"wav", "mp3", "ogg", "oga", "pdf", "png"}


@bp.get("/media/<path:ref>")
def download(ref: str) -> Response:
    path = services().history.media_file(ref)
    if path is None:
        abort(404)
    ext = path.suffix.lstrip(".").lower()
    inline = ext in INLINE and request.args.get("download") != "1"
    response = send_file(
        path,
        mimetype=TYPES.get(ext, "application/octet-stream"),
        as_attachment=not inline,
        download_name=path.name,
        conditional=True,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    if ext == "pdf":
        response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
