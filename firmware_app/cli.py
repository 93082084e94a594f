"""`frontdesk`: run the daemon, the demo, and manage settings from the shell.

Commands that change data talk to the running daemon over its control socket; only when no
daemon holds the data dir do they open the store themselves. Exit codes: 0 done, 1 failed,
2 bad input (the message names the field, the value and what is allowed).
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .config import DEFAULT_PATH, MachineConfig, StoreConfig, demo_config, load_config
from .errors import (
    ConfigError,
    DaemonNotRunning,
    FrontdeskError,
    StoreLockedError,
    ValidationError,
)

log = logging.getLogger("frontdesk")

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def _err(msg: str) -> None:
    print(f"frontdesk: {msg}", file=sys.stderr)


def _print_problems(exc: ValidationError) -> None:
    if exc.context == "preview":  # `routing explain` only reads: there was nothing to change
        _err("the call to explain is not valid:")
    elif isinstance(exc, ConfigError):  # read before anything else: nothing ran
        _err(f"the machine config {exc.context} is not valid:")
    else:
        _err(f"{exc.context or 'input'} is not valid; nothing was changed:")
    for p in exc.problems:
        print(f"  - {p.field}: {p.value!r} is not allowed; expected {p.allowed}", file=sys.stderr)


def _config(args: argparse.Namespace) -> MachineConfig:
    return load_config(args.config)


def _daemon_dir(args: argparse.Namespace) -> Path:
    """The running daemon's data folder: --data-dir (a demo's), else the machine config's."""
    if getattr(args, "data_dir", None):
        return Path(args.data_dir).resolve()
    return _config(args).data_dir


def as_data_owner(data_dir: Path, work: Callable[[], Any]) -> Any:
    """`work()`, as the owner of `data_dir` when we are root and it belongs to someone else.

    `sudo frontdesk passwd` with the service stopped must not leave root-owned journals that
    the `frontdesk` user then cannot open. The work runs in a forked child that drops to the
    owner's uid, gid and groups; its result or exception comes back pickled through a pipe,
    and this process stays root (to write `--out` files where root may).
    """
    if os.geteuid() != 0:
        return work()
    try:
        st = data_dir.stat()
    except OSError:
        return work()  # nothing there yet: whoever makes it owns it
    if st.st_uid == 0:
        return work()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; measured through its result
        os.close(read_fd)
        try:
            _drop_to(st.st_uid, st.st_gid)
            outcome: tuple[str, Any] = ("ok", work())
        except BaseException as exc:
            outcome = ("error", exc)
        try:
            data = pickle.dumps(outcome)
        except Exception:
            data = pickle.dumps(("error", FrontdeskError(str(outcome[1]))))
        with os.fdopen(write_fd, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise FrontdeskError(
            f"the work as the owner of {data_dir} (uid {st.st_uid}) ended without an answer "
            f"(wait status {status})"
        )
    kind, value = pickle.loads(data)  # noqa: S301 - our own child, through our own pipe
    if kind == "error":
        raise value
    return value


def _drop_to(uid: int, gid: int) -> None:
    import pwd

    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        os.setgroups([])
    else:
        gid = user.pw_gid
        os.initgroups(user.pw_name, gid)
    os.setgid(gid)
    os.setuid(uid)
    os.umask(0o027)


def with_store_or_daemon(
    config: MachineConfig, via_daemon: Callable[[Any], Any], direct: Callable[[Any], Any]
) -> Any:
    """Run through the daemon's control socket if it runs, else on the store directly (as
    the data dir's owner: see `as_data_owner`)."""
    from .control import ControlClient
    from .store import Store

    if Store.is_locked(config.data_dir):
        return via_daemon(ControlClient(config.data_dir))

    def on_store() -> tuple[bool, Any]:
        try:
            store = Store(config.data_dir)
        except StoreLockedError:  # the daemon started meanwhile
            return False, None
        try:
            from .events import EventBus
            from .services import Services

            return True, direct(Services.build(config, store, EventBus()))
        finally:
            store.close()

    done, result = as_data_owner(config.data_dir, on_store)
    if not done:
        return via_daemon(ControlClient(config.data_dir))
    return result


# -- commands ------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import Daemon, exit_code
    from .logs import setup_logging

    config = _config(args)
    ring = setup_logging(config.log.level)
    daemon = Daemon(config, log_ring=ring)
    return exit_code(daemon, daemon.run())


def cmd_demo(args: argparse.Namespace) -> int:
    if getattr(args, "demo_command", None) == "call":
        return cmd_demo_call(args)
    if getattr(args, "demo_command", None) == "fax":
        return cmd_demo_fax(args)
    if getattr(args, "demo_command", None) == "sms":
        return cmd_demo_sms(args)
    from .daemon import Daemon, exit_code
    from .logs import setup_logging

    config = demo_config(Path(args.data_dir).resolve())
    if args.listen:
        config.web.listen = args.listen
    ring = setup_logging("info")
    print(
        f"Frontdesk demo: data in {config.data_dir}, web page on http://{config.web.listen}/ "
        "(Ctrl-C stops)",
        flush=True,
    )
    daemon = Daemon(config, log_ring=ring)
    return exit_code(daemon, daemon.run())


def _demo(args: argparse.Namespace, method: str, **params: Any) -> Any:
    """Ask the demo running in `--data-dir` to do `method`; when none runs there, say how to
    start one."""
    from .control import ControlClient

    folder = Path(args.data_dir).resolve()
    try:
        return ControlClient(folder, timeout=10.0).call(method, **params)
    except DaemonNotRunning:
        again = "" if args.data_dir == "demo-data" else f" --data-dir {args.data_dir}"
        raise DaemonNotRunning(
            f"no demo is running in {folder}: start it first, in another terminal "
            f"(`frontdesk demo{again}`, or `make demo`)"
        ) from None


def cmd_demo_fax(args: argparse.Namespace) -> int:
    line = _demo(args, "demo.fax", number=args.number, line=args.line)
    print(f"a fax machine ({args.number}) calls {line}: watch the Fax page")
    return EXIT_OK


def cmd_demo_sms(args: argparse.Namespace) -> int:
    got = _demo(args, "demo.sms", number=args.number, text=" ".join(args.text), line=args.line)
    parts = got.get("parts") or 1
    print(
        f"a text from {args.number} ({parts} part{'s' if parts != 1 else ''}) reaches "
        f"{got.get('line')}: watch the Messages page"
    )
    return EXIT_OK


def cmd_demo_call(args: argparse.Namespace) -> int:
    script: dict[str, Any] = {}  # only what was asked: a plain call suits any demo version
    if args.press:
        script["press"] = args.press
    if args.say:
        script["say"] = args.say
    if args.hang_up_after is not None:
        script["hang_up_after"] = args.hang_up_after
    line = _demo(args, "demo.call", number=args.number, name=args.name, line=args.line, **script)
    does = []
    if args.press:
        does.append(f"presses {args.press}")
    if args.say:
        does.append("leaves a message after the beep")
    if args.hang_up_after is not None:
        does.append(f"hangs up after {args.hang_up_after:g} s")
    print(
        f"ringing {line} with caller ID {args.number}"
        + (f"; the caller {', '.join(does)}" if does else "; the caller stays silent")
    )
    return EXIT_OK


def cmd_modem_probe(args: argparse.Namespace) -> int:
    from .modem.detect import BlockingChat, find_modems, probe
    from .modem.transport import PortError
    from .store import Store

    config = _config(args)
    if not args.devices and Store.is_locked(config.data_dir):
        from .control import ControlClient

        lines = ControlClient(config.data_dir).call("lines.status")
        print("The daemon is running; its lines:")
        for line in lines:
            what = line["description"] or f"{line['port']}: no modem answering"
            print(f"  {line['name']} ({line['state']}): {what}")
            if line["last_error"]:
                print(f"    last problem: {line['last_error']}")
        return EXIT_OK
    devices = args.devices or [d for d in config.modem.devices if not d.startswith("sim:")]
    found = []
    modems = 0
    in_use = False
    if "auto" in devices:
        profiles = find_modems(baudrate=config.modem.baudrate)
        modems += len(profiles)
        found += [p.describe() for p in profiles]
    for device in (d for d in devices if d != "auto"):
        try:
            with BlockingChat(device, config.modem.baudrate) as chat:
                profile = probe(chat, device)
        except PortError as exc:
            found.append(f"{device}: {exc}")
            in_use = in_use or "another program has it open" in str(exc)
            continue
        if profile is not None and profile.kind != "unknown":
            modems += 1
        found.append(profile.describe() if profile else f"{device}: no modem answers there")
    if not found:
        print("No modem found (looked in /dev/serial/by-id, /dev/ttyACM*, /dev/ttyUSB*).")
        print("Plug in the USB modem, or set modem.devices in the machine config.")
        return EXIT_FAIL
    for text in found:
        print(text)
    if in_use and Store.is_locked(config.data_dir):
        print(
            "Frontdesk is running and owns its modems' ports: `frontdesk modem probe` "
            "without a DEVICE shows its lines."
        )
    return EXIT_OK if modems else EXIT_FAIL


def cmd_version(args: argparse.Namespace) -> int:
    print(f"frontdesk {__version__}")
    return EXIT_OK


def cmd_settings_export(args: argparse.Namespace) -> int:
    config = _config(args)
    secrets = not args.without_passwords
    if not config.data_dir.exists():
        # Nothing saved yet: the defaults, without making an empty data dir as a side effect
        # (it would belong to whoever ran this, not to the daemon's user).
        import dataclasses
        import tempfile

        _err(
            f"{config.data_dir} does not exist yet (Frontdesk has not run with this config): "
            "these are the default settings"
        )
        with tempfile.TemporaryDirectory(prefix="frontdesk-defaults-") as tmp:
            scratch = dataclasses.replace(config, store=StoreConfig(data_dir=tmp))
            text: str = with_store_or_daemon(
                scratch, lambda client: "", lambda services: services.settings.export_toml()
            )
    else:
        text = with_store_or_daemon(
            config,
            lambda client: client.call("settings.export", secrets=secrets),
            lambda services: services.settings.export_toml(secrets=secrets),
        )
    if args.out:
        from .store.durable import atomic_write

        atomic_write(Path(args.out), text.encode(), mode=0o600)
        print(f"settings written to {args.out}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_settings_import(args: argparse.Namespace) -> int:
    from .settings import import_toml

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _err(f"{path}: no such file; nothing was changed")
        return EXIT_BAD_INPUT
    except (OSError, UnicodeDecodeError) as exc:
        _err(f"{path}: cannot read it ({exc}); nothing was changed")
        return EXIT_BAD_INPUT
    import_toml(text, str(path))  # validate before touching anything
    config = _config(args)
    changes = with_store_or_daemon(
        config,
        lambda client: client.call("settings.import", text=text, context=str(path)),
        lambda services: services.settings.import_toml(text, str(path)),
    )
    if not changes:
        print("settings imported: nothing changed")
    else:
        print(f"settings imported: {len(changes)} change(s)")
        for name, old, new in changes:
            print(f"  {name}: {old!r} -> {new!r}")
    return EXIT_OK


def _read_new_password(args: argparse.Namespace) -> str:
    from .services.auth import password_problems

    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        confirm = password
    else:
        import getpass

        password = getpass.getpass("New owner password: ")
        confirm = getpass.getpass("Repeat it: ")
    problems = password_problems(password, confirm)
    if problems:
        raise ValidationError(problems, "new password")
    return password


def cmd_passwd(args: argparse.Namespace) -> int:
    password = _read_new_password(args)
    config = _config(args)
    with_store_or_daemon(
        config,
        lambda client: client.call("passwd", password=password),
        lambda services: services.auth.set_password(password),
    )
    print("owner password set; every browser logged in to the web page must log in again")
    return EXIT_OK


def cmd_routing_explain(args: argparse.Namespace) -> int:
    config = _config(args)
    number = args.number or ""
    plan: dict[str, Any] = with_store_or_daemon(
        config,
        lambda client: client.call("routing.explain", at=args.at, number=number, line=args.line),
        lambda services: services.routing.explain(args.at, number, args.line),
    )
    where = f" on {plan['line']}" if plan.get("line") else ""
    print(f"If {number or 'a withheld number'} calls at {args.at}{where}:")
    print(plan["explanation"])
    for line in plan["steps"]:
        print(f"  {line}")
    return EXIT_OK


def cmd_sms_send(args: argparse.Namespace) -> int:
    from .store import Store

    data_dir = _daemon_dir(args)
    if not Store.is_locked(data_dir):
        _err(
            "sending a text needs the running daemon (it owns the GSM line); start it with "
            "`systemctl start frontdesk`, then try again"
        )
        return EXIT_FAIL
    from .control import ControlClient

    text = " ".join(args.text)
    result = ControlClient(data_dir).call("sms.send", to=args.to, text=text, line=args.line)
    parts = result.get("parts") or 1
    encoding = "UCS-2" if result.get("encoding") == "ucs2" else "GSM-7"
    print(
        f"text to {result.get('to')} queued ({parts} part{'s' if parts != 1 else ''}, "
        f"{encoding}); it goes out on the GSM line now"
    )
    return EXIT_OK


# The control socket takes requests up to 4 MiB; base64 makes a file a third larger.
FAX_CLI_MAX = 3 * 1024 * 1024 - 4096
# How long `frontdesk fax send` waits for the pages to be drawn before it returns anyway.
FAX_CLI_WAIT = 120.0


def cmd_fax_send(args: argparse.Namespace) -> int:
    import base64

    from .store import Store

    data_dir = _daemon_dir(args)
    if not Store.is_locked(data_dir):
        _err(
            "sending a fax needs the running daemon (it owns the lines); start it with "
            "`systemctl start frontdesk`, then try again"
        )
        return EXIT_FAIL
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        _err(f"cannot read {args.file}: {exc.strerror or exc}")
        return EXIT_FAIL
    if len(data) > FAX_CLI_MAX:
        _err(
            f"{args.file} is {len(data) / 1048576:.1f} MB; from the command line a fax can be "
            "up to 3 MB (the web page and the API take up to 15 MB)"
        )
        return EXIT_FAIL
    from .control import ControlClient

    client = ControlClient(data_dir, timeout=60.0)
    result = client.call(
        "fax.send",
        to=args.to,
        content=base64.b64encode(data).decode("ascii"),
        cover=args.cover,
        fine=not args.normal,
        name=Path(args.file).name,
    )
    # Queued (stored) already; wait a while for its pages to be drawn, to say how it went.
    waited = time.monotonic() + FAX_CLI_WAIT
    while result.get("status") == "drawing" and time.monotonic() < waited:
        result = client.call("fax.status", id=result.get("id"), wait=20)
    who, fax_id = result.get("to"), result.get("id")
    if result.get("state") == "failed":
        _err(f"fax to {who} not sent (id {fax_id}): {result.get('reason') or 'it failed'}")
        return EXIT_FAIL
    if result.get("status") == "drawing":
        print(
            f"fax to {who} queued, id {fax_id}; its pages are still being drawn and it goes "
            "out once they are ready (the Fax page shows how it goes)"
        )
        return EXIT_OK
    pages = result.get("pages") or 0
    print(
        f"fax to {who} queued ({pages} page{'s' if pages != 1 else ''}), "
        f"id {fax_id}; it goes out when a fax line is free"
    )
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frontdesk",
        description="Frontdesk: the office phone line's receptionist "
        "(calls, voicemail, SMS, fax, email).",
    )
    parser.add_argument("--version", action="version", version=f"frontdesk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            "-c",
            metavar="PATH",
            default=None,
            help=f"machine config file (default {DEFAULT_PATH}, which may be absent: then every "
            "key has its default)",
        )

    p = sub.add_parser(
        "run",
        help="run the daemon (what the systemd service starts)",
        description="Run the Frontdesk daemon in the foreground until SIGTERM or Ctrl-C.",
    )
    config_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "demo",
        help="run the product on simulated lines, locally",
        usage="%(prog)s [-h] [--data-dir DATA_DIR] [--listen LISTEN] [ACTION ...]",
        description="Run Frontdesk with its data in a local folder, simulated modem "
        "lines and the web page on 127.0.0.1:8080 (Ctrl-C stops it). Nothing leaves this "
        "machine. With an ACTION, act on the demo already running in DATA_DIR instead.",
    )
    p.add_argument(
        "--data-dir",
        default="demo-data",
        help="where the demo keeps its data (default ./demo-data)",
    )
    p.add_argument("--listen", default="", help="web address, default 127.0.0.1:8080")
    p.set_defaults(func=cmd_demo)
    dsub = p.add_subparsers(dest="demo_command", metavar="ACTION")
    c = dsub.add_parser(
        "call",
        help="ring the running demo's analog (or GSM) line",
        description="Place a simulated call with caller ID NUMBER on the running demo's "
        "analog line, or with --line gsm on its GSM line (the demo must be running with the "
        "same --data-dir).",
    )
    c.add_argument("number", metavar="NUMBER", help="the caller's number, e.g. +15551234567")
    c.add_argument("--name", default=None, help="the caller's name for caller ID")
    c.add_argument(
        "--line",
        default=None,
        help="which simulated line: a name (line2) or a kind (analog, gsm); default: the "
        "analog one",
    )
    c.add_argument(
        "--press",
        metavar="KEYS",
        default="",
        help="keys the caller presses during the first greeting: a key menu's choice, or 1 "
        "when screening asks",
    )
    c.add_argument(
        "--say",
        metavar="TEXT",
        default="",
        help="words the caller speaks once recording starts (the message after the beep; "
        "with a key menu, choose with --press first), then hangs up",
    )
    c.add_argument(
        "--hang-up-after",
        metavar="SECONDS",
        type=float,
        default=None,
        help="the caller hangs up this many seconds after the answer (during the greeting: "
        "a missed call)",
    )
    c.add_argument(
        "--data-dir",
        # SUPPRESS: given before `call` (`demo --data-dir X call N`), the demo's own option
        # holds it; a default here would overwrite it.
        default=argparse.SUPPRESS,
        help="the demo's data folder (default ./demo-data; also accepted before `call`)",
    )
    c.set_defaults(func=cmd_demo_call)
    f = dsub.add_parser(
        "fax",
        help="a fax machine calls the running demo's analog line",
        description="A simulated fax machine calls the running demo's analog line and sends "
        "a sample page: the call is answered, its calling tone hands it to fax, and the page "
        "arrives in Class 1 on the Fax page and by email.",
    )
    f.add_argument(
        "number", metavar="NUMBER", nargs="?", default="+15551230100", help="the fax's number"
    )
    f.add_argument("--line", default=None, help="which simulated line (default: the analog one)")
    f.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="the demo's data folder (default ./demo-data; also accepted before `fax`)",
    )
    f.set_defaults(func=cmd_demo_fax)
    t = dsub.add_parser(
        "sms",
        help="a text reaches the running demo's GSM line",
        description="A text from NUMBER reaches the SIM of the running demo's simulated GSM "
        "line, as the network delivers it (a long one in parts, out of order): Frontdesk "
        "takes it from the SIM and it shows on the Messages page (and by email).",
    )
    t.add_argument("number", metavar="NUMBER", help="the sender, e.g. +15551234567")
    t.add_argument("text", metavar="TEXT", nargs="+", help="the message")
    t.add_argument("--line", default=None, help="which simulated line (default: the GSM one)")
    t.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="the demo's data folder (default ./demo-data; also accepted before `sms`)",
    )
    t.set_defaults(func=cmd_demo_sms)

    p = sub.add_parser(
        "modem",
        help="find and describe modems",
        description="Look at the modems Frontdesk can use.",
    )
    msub = p.add_subparsers(dest="modem_command", metavar="ACTION", required=True)
    m = msub.add_parser(
        "probe",
        help="say which modems are connected and what they can do",
        description="Probe the configured devices (or DEVICE..., or every USB serial port "
        "with `auto`) and describe each modem. While the daemon runs, its lines are shown "
        "instead: it owns the ports.",
    )
    config_arg(m)
    m.add_argument("devices", nargs="*", metavar="DEVICE", help="port paths or pyserial URLs")
    m.set_defaults(func=cmd_modem_probe)

    p = sub.add_parser(
        "settings",
        help="export or import the owner's settings (backup format)",
        description="The owner's settings as one TOML document: the backup format.",
    )
    ssub = p.add_subparsers(dest="settings_command", metavar="ACTION", required=True)
    e = ssub.add_parser(
        "export",
        help="print or save the settings as TOML",
        description="Write the settings as TOML to stdout or --out FILE (mode 0600: "
        "it holds the mail password, unless --without-passwords).",
    )
    config_arg(e)
    e.add_argument("--out", "-o", metavar="FILE", help="write to FILE instead of stdout")
    e.add_argument(
        "--without-passwords",
        action="store_true",
        help="leave out the mail and MQTT passwords and the SIM PIN (a copy to share or "
        "keep elsewhere); importing it keeps the ones saved on the box",
    )
    e.set_defaults(func=cmd_settings_export)
    i = ssub.add_parser(
        "import",
        help="validate and restore settings from a TOML file",
        description="Validate FILE first; on any problem print each bad field, its value "
        "and what is allowed, and change nothing. Otherwise replace the settings.",
    )
    config_arg(i)
    i.add_argument("file", metavar="FILE", help="a TOML file made by `frontdesk settings export`")
    i.set_defaults(func=cmd_settings_import)

    p = sub.add_parser(
        "passwd",
        help="set or reset the web page's owner password",
        description="Set the owner password of the web page (also when it is forgotten). "
        "Reads it twice from the terminal, or once from standard input with --stdin. "
        "Every logged-in browser must log in again.",
    )
    config_arg(p)
    p.add_argument("--stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=cmd_passwd)

    p = sub.add_parser(
        "routing",
        help="explain how a call would be handled",
        description="Call routing: opening hours, rules and menus.",
    )
    rsub = p.add_subparsers(dest="routing_command", metavar="ACTION", required=True)
    x = rsub.add_parser(
        "explain",
        help="what happens if NUMBER calls at a time",
        description="Show the plan for a call at --at (local time, YYYY-MM-DD HH:MM) from "
        "--number (omit it for a withheld number), with the current settings, the contacts "
        "marked VIP or blocked, and the line as a live call on it would find it.",
    )
    config_arg(x)
    x.add_argument("--number", "-n", default="", help="the calling number; omit for withheld")
    x.add_argument("--at", required=True, metavar="'YYYY-MM-DD HH:MM'", help="local time")
    x.add_argument(
        "--line",
        default=None,
        help="the line the call arrives on: a line's name (as the running daemon knows it, "
        "with what it can do now), or a kind of line: analog, analog_transfer, gsm, fax "
        "(default: the first line, else analog)",
    )
    x.set_defaults(func=cmd_routing_explain)

    p = sub.add_parser(
        "sms",
        help="send a text message",
        description="Text messages through the running daemon's GSM line.",
    )
    tsub = p.add_subparsers(dest="sms_command", metavar="ACTION", required=True)
    t = tsub.add_parser(
        "send",
        help="send TEXT to NUMBER",
        description="Queue a text to --to NUMBER; the daemon sends it (GSM-7 or UCS-2, in "
        "parts when long), retries when the network is busy and records the delivery report.",
    )
    config_arg(t)
    t.add_argument(
        "--data-dir",
        default=None,
        help="the running daemon's data folder instead of the config's (a demo's: ./demo-data)",
    )
    t.add_argument("--to", required=True, metavar="NUMBER", help="e.g. +447700900123")
    t.add_argument("--line", default=None, help="which GSM line (default: the first)")
    t.add_argument("text", nargs="+", metavar="TEXT", help="the message")
    t.set_defaults(func=cmd_sms_send)

    p = sub.add_parser(
        "fax",
        help="send a fax",
        description="Faxes through the running daemon's fax line.",
    )
    fsub = p.add_subparsers(dest="fax_command", metavar="ACTION", required=True)
    f = fsub.add_parser(
        "send",
        help="send FILE (PDF, PNG, JPEG or TIFF) to NUMBER",
        description="Queue FILE as a fax to --to NUMBER; the daemon sends it on a fax line, "
        "tries again when the line is busy or nobody answers, and emails the result.",
    )
    config_arg(f)
    f.add_argument(
        "--data-dir",
        default=None,
        help="the running daemon's data folder instead of the config's (a demo's: ./demo-data)",
    )
    f.add_argument("--to", required=True, metavar="NUMBER", help="e.g. +15550100")
    f.add_argument("--cover", default=None, metavar="NOTE", help="add a cover page with NOTE")
    f.add_argument("--normal", action="store_true", help="normal resolution (default fine)")
    f.add_argument("file", metavar="FILE", help="the document")
    f.set_defaults(func=cmd_fax_send)

    p = sub.add_parser(
        "version", help="print the version", description="Print Frontdesk's version."
    )
    p.set_defaults(func=cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # the parser is let go: `run` lasts for months
    try:
        result: int = args.func(args)
        return result
    except ValidationError as exc:
        _print_problems(exc)
        return EXIT_BAD_INPUT
    except DaemonNotRunning as exc:
        _err(str(exc))
        return EXIT_FAIL
    except FrontdeskError as exc:
        _err(str(exc))
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
