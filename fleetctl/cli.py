"""fleetctl's entry point: global flags (with FLEETCTL_<FLAG> environment defaults), verb
dispatch with cobra-style unique-prefix matching, exit codes and top-level error messages.

Exit codes: 0 success, 1 failure, 2 usage error (argparse) or the deprecated --sign.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TextIO

from fleetctl import __version__, completion, sshcmd, sshtunnel
from fleetctl.client import (
    DEFAULT_ENDPOINT,
    AuthError,
    Client,
    ClientError,
    Endpoint,
    parse_endpoint,
    read_token,
    tls_context,
)
from fleetctl.commands import (
    activate,
    alarms,
    cat,
    deactivate,
    destroy,
    endpoints,
    lifecycle,
    listing,
    move,
    rebalance,
)
from fleetctl.commands import remote as remote_commands
from fleetctl.commands.base import Command, Context
from fleetctl.commands.restart import RESTART
from fleetctl.commands.ssh import SSH, hand_over
from fleetctl.commands.update import UPDATE
from fleetctl.tunnel import TunnelError, parse_tunnel

COMMANDS: tuple[Command, ...] = (
    activate.SUBMIT,
    activate.LOAD,
    activate.START,
    deactivate.STOP,
    deactivate.UNLOAD,
    destroy.DESTROY,
    cat.CAT,
    listing.LIST_UNITS,
    listing.LIST_UNIT_FILES,
    listing.LIST_MACHINES,
    alarms.CONFIRM_RESCHEDULE,
    RESTART,
    remote_commands.STATUS,
    remote_commands.JOURNAL,
    SSH,
    UPDATE,
    endpoints.ENDPOINTS,
    lifecycle.CORDON,
    lifecycle.DRAIN,
    lifecycle.UNCORDON,
    lifecycle.UNLOCK,
    move.MOVE,
    rebalance.REBALANCE,
)
LOCAL_VERBS = ("version", "help", "completion")
GLOBAL_FLAGS = {  # flag -> (default, type, help)
    "endpoint": (DEFAULT_ENDPOINT, str, "fleetd API endpoint: unix:///path, http(s)://host:port"),
    "driver": ("API", str, "only API is supported"),
    "request-timeout": (3.0, float, "seconds allowed for each API request"),
    "ca-file": ("", str, "CA certificate that signed an https endpoint's certificate"),
    "cert-file": ("", str, "client certificate for an https endpoint (mutual TLS)"),
    "key-file": ("", str, "key of --cert-file"),
    "token-file": ("", str, "file holding the API bearer token (else FLEETCTL_TOKEN); "
                   "sent only to https endpoints"),
    "tunnel": ("", str, "HOST[:PORT]: carry the API traffic through ssh to this host "
               "(the endpoint is then as seen from there)"),
    "ssh-username": ("", str, "remote user for --tunnel and ssh (default: ssh's own)"),
    "ssh-timeout": (10.0, float, "seconds allowed for setting up an SSH connection"),
    "strict-host-key-checking": (True, bool, "check host keys against --known-hosts-file "
                                 "(=false: neither check nor store them)"),
    "known-hosts-file": (sshcmd.DEFAULT_KNOWN_HOSTS, str, "known host keys for ssh connections"),
}
ALIASES = {"ssh-username": ("--ssh-user",)}  # --ssh-user/FLEETCTL_SSH_USER: fleetctl 0.1's names
EPILOG = ("Every global flag can also be set as FLEETCTL_<FLAG> (e.g. FLEETCTL_ENDPOINT, "
          "FLEETCTL_TUNNEL, FLEETCTL_SSH_USERNAME); the flag wins. The token itself may be given "
          "as FLEETCTL_TOKEN.")
TRUE_WORDS = ("1", "t", "true", "yes", "on")
FALSE_WORDS = ("0", "f", "false", "no", "off")


class UsageError(Exception):
    """Bad global flag value from the environment."""


def env_name(flag: str) -> str:
    return "FLEETCTL_" + flag.upper().replace("-", "_")


def env_defaults(environ: Mapping[str, str]) -> dict[str, object]:
    """FLEETCTL_<FLAG> for every global flag; explicit command-line flags still win."""
    found: dict[str, object] = {}
    for flag, (_, kind, _) in {**GLOBAL_FLAGS, "debug": (False, bool, "")}.items():
        raw = environ.get(env_name(flag))
        if raw is not None:
            found[flag.replace("-", "_")] = _convert(env_name(flag), raw, kind)
    if "FLEETCTL_SSH_USER" in environ and "ssh_username" not in found:
        found["ssh_username"] = environ["FLEETCTL_SSH_USER"]
    return found


def parse_bool(raw: str) -> bool:
    """A Go-style boolean flag value (`--strict-host-key-checking=false`)."""
    word = raw.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise argparse.ArgumentTypeError(f'invalid boolean value "{raw}"')
    return word in TRUE_WORDS


def _convert(variable: str, raw: str, kind: type) -> object:
    if kind is bool:
        return raw.strip().lower() in TRUE_WORDS
    try:
        return kind(raw)
    except ValueError as exc:
        raise UsageError(f'invalid value "{raw}" for {variable}') from exc


def _add_globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    for flag, (default, kind, text) in GLOBAL_FLAGS.items():
        boolean = {"nargs": "?", "const": True, "metavar": "true|false"} if kind is bool else {}
        parser.add_argument(
            "--" + flag,
            *ALIASES.get(flag, ()),
            type=parse_bool if kind is bool else kind,
            help=argparse.SUPPRESS if suppress else text,
            default=argparse.SUPPRESS if suppress else default,
            **boolean,  # type: ignore[arg-type]
        )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help=argparse.SUPPRESS if suppress else "print API requests to stderr",
    )


def build_parser(defaults: dict[str, object]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetctl",
        allow_abbrev=False,
        description="fleetctl controls a fleetd cluster through fleetd's HTTP API.",
        epilog=EPILOG,
    )
    _add_globals(parser, suppress=False)
    parser.add_argument("--version", "-v", action="store_true", help="print the version and exit")
    parser.set_defaults(**defaults)
    inherited = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_globals(inherited, suppress=True)
    verbs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = verbs.add_parser(
            command.name,
            help=command.summary,
            usage=command.usage,
            parents=[inherited],
            allow_abbrev=False,
            description=command.summary,
        )
        command.configure(sub)
    verbs.add_parser("version", help="Print the version and exit", parents=[inherited])
    helper = verbs.add_parser("help", help="Help about any command", parents=[inherited])
    helper.add_argument("topic", nargs="?")
    shells = verbs.add_parser("completion", help="Print a bash or zsh completion script",
                              description="Print a shell completion script: "
                              "fleetctl completion bash > /etc/bash_completion.d/fleetctl, or "
                              'fleetctl completion zsh > "${fpath[1]}/_fleetctl"',
                              parents=[inherited])
    shells.add_argument("shell", choices=completion.SHELLS)
    return parser


def expand_prefix(argv: list[str]) -> list[str]:
    """Cobra accepts a unique prefix of a verb: `fleetctl list-m` = `fleetctl list-machines`."""
    verbs = [c.name for c in COMMANDS] + list(LOCAL_VERBS)
    valued = {"--" + flag for flag, (_, kind, _) in GLOBAL_FLAGS.items() if kind is not bool}
    valued |= {alias for aliases in ALIASES.values() for alias in aliases}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in valued:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        matches = [v for v in verbs if v.startswith(arg)]
        if arg not in verbs and len(matches) == 1:
            return argv[:i] + matches + argv[i + 1 :]
        return argv
    return argv


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    environ = os.environ if environ is None else environ
    args_list = expand_prefix(list(sys.argv[1:] if argv is None else argv))
    try:
        parser = build_parser(env_defaults(environ))
    except UsageError as exc:
        print(exc, file=err)
        return 2
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0)
    return _dispatch(parser, args, out, err, environ)


def _dispatch(
    parser: argparse.ArgumentParser, args: argparse.Namespace, out: TextIO, err: TextIO,
    environ: Mapping[str, str],
) -> int:
    if args.version or args.command == "version":
        print(f"fleetctl version {__version__}", file=out)
        return 0
    if args.command is None:
        parser.print_help(out)
        return 0
    if args.command == "help":
        return _help(parser, args.topic, out, err)
    if args.command == "completion":
        out.write(completion.script(args.shell, parser))
        return 0
    if args.driver.lower() != "api":
        print(f'unrecognized driver "{args.driver}": fleetctl only speaks to the API', file=err)
        return 1
    command = next(c for c in COMMANDS if c.name == args.command)
    code, handoff = asyncio.run(_run(command, args, out, err, environ))
    return code if handoff is None else hand_over(handoff, err)


def _help(parser: argparse.ArgumentParser, topic: str | None, out: TextIO, err: TextIO) -> int:
    if topic is None:
        parser.print_help(out)
        return 0
    try:
        parser.parse_args([topic, "--help"])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def ssh_options(args: argparse.Namespace) -> sshcmd.SshOptions:
    """fleet's global SSH flags as one record (the tunnel host, if any, is every hop's jump)."""
    return sshcmd.SshOptions(
        user=args.ssh_username, strict=args.strict_host_key_checking,
        known_hosts=os.path.expanduser(args.known_hosts_file), timeout=args.ssh_timeout,
        interactive=sys.stdin is not None and sys.stdin.isatty(),
        jump=parse_tunnel(args.tunnel) if args.tunnel else None)


def _tunnel(endpoint: Endpoint, opts: sshcmd.SshOptions) -> AbstractAsyncContextManager[Endpoint]:
    if opts.jump is None:
        return contextlib.nullcontext(endpoint)
    return sshtunnel.opened(opts.jump, endpoint, opts)


async def _run(
    command: Command, args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]
) -> tuple[int, list[str] | None]:
    try:
        endpoint = parse_endpoint(args.endpoint, err)
        tls = tls_context(args.ca_file, args.cert_file, args.key_file)
        token = read_token(environ, args.token_file)
        if token and endpoint.base.scheme != "https" and not endpoint.socket_path:
            print("WARNING: not sending the API token over plain http; use an https endpoint",
                  file=err)
        opts = ssh_options(args)
        async with _tunnel(endpoint, opts) as endpoint, \
                Client(endpoint, timeout=args.request_timeout, tls=tls, token=token,
                       client_cert=bool(tls and args.cert_file),
                       debug=err if args.debug else None) as client:
            ctx = Context(client, out, err, opts)
            code = await command.run(ctx, args)
        return code, ctx.handoff
    except AuthError as exc:
        print(f"fleetctl: authentication failed: {exc}", file=err)
    except (ClientError, TunnelError) as exc:
        print(f"Error: {exc}", file=err)
    except OSError as exc:  # e.g. unreadable TLS files
        print(f"Error: {exc}", file=err)
    return 1, None
