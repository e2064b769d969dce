"""`fleetctl completion bash|zsh`: shell completion scripts generated from fleetctl's parser.

Owns reading the verbs, their flags and the kind of their positional arguments from the argparse
parser cli.py builds (so the scripts cannot drift from the CLI) and writing them into a bash or
a zsh script. Unit arguments (metavar UNIT) complete unit names from
`fleetctl list-unit-files --no-legend --fields=unit` plus local files; machine arguments
(metavar MACHINE) complete ids from `fleetctl list-machines --no-legend --fields=machine --full`;
`ssh`'s first argument ([MACHINE|UNIT]) completes both; UNIT_FILE arguments complete local files.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

SHELLS = ("bash", "zsh")
UNITS_CMD = "fleetctl list-unit-files --no-legend --fields=unit 2>/dev/null"
MACHINES_CMD = "fleetctl list-machines --no-legend --fields=machine --full 2>/dev/null"


@dataclass(frozen=True)
class Verb:
    name: str
    flags: tuple[str, ...]
    argument: str  # "unit", "machine", "host" (machine or unit), "file" or "" (nothing)


def _flags(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    found = [opt for action in parser._actions for opt in action.option_strings
             if opt.startswith("--") and action.help is not argparse.SUPPRESS]
    return tuple(sorted(set(found)))


def _argument(parser: argparse.ArgumentParser) -> str:
    metavars = {str(a.metavar or a.dest) for a in parser._actions if not a.option_strings}
    for metavar, kind in (("UNIT", "unit"), ("MACHINE", "machine"), ("UNIT_FILE", "file")):
        if metavar in metavars:
            return kind
    return "host" if any(m.startswith("[MACHINE|UNIT]") for m in metavars) else ""


def valued(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """Global flags that take a value (the next word is not a verb)."""
    return tuple(sorted(opt for a in parser._actions if a.option_strings and a.nargs not in (0, "?")
                        and a.help is not argparse.SUPPRESS for opt in a.option_strings))


def verbs(parser: argparse.ArgumentParser) -> tuple[tuple[str, ...], tuple[Verb, ...]]:
    """The global flags and every verb (with its own flags) of fleetctl's parser."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = tuple(Verb(name, _flags(p), _argument(p)) for name, p in sub.choices.items())
    return _flags(parser), found


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    if shell not in SHELLS:
        raise ValueError(f'unsupported shell "{shell}": choose one of {", ".join(SHELLS)}')
    globals_, found = verbs(parser)
    skip = "|".join(valued(parser)) or "--"
    return (_bash if shell == "bash" else _zsh)(globals_, found, skip)


def _bash(globals_: tuple[str, ...], found: tuple[Verb, ...], skip: str) -> str:
    cases = "".join(
        f"        {v.name}) flags=\"{' '.join(v.flags)}\"; kind={v.argument or 'none'} ;;\n"
        for v in found)
    return f"""# bash completion for fleetctl
# install: fleetctl completion bash > /etc/bash_completion.d/fleetctl
_fleetctl() {{
    local cur verb="" flags="" kind=none i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            {skip}) ((i++)) ;;
            -*) ;;
            *) verb="${{COMP_WORDS[i]}}"; break ;;
        esac
    done
    if [[ -z "$verb" ]]; then
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W "{' '.join(globals_)}" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "{' '.join(v.name for v in found)}" -- "$cur"))
        fi
        return 0
    fi
    case "$verb" in
{cases}    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif [[ "$kind" == unit ]]; then
        COMPREPLY=($(compgen -W "$({UNITS_CMD})" -- "$cur") $(compgen -f -- "$cur"))
    elif [[ "$kind" == machine ]]; then
        COMPREPLY=($(compgen -W "$({MACHINES_CMD})" -- "$cur"))
    elif [[ "$kind" == host ]]; then
        COMPREPLY=($(compgen -W "$({MACHINES_CMD}) $({UNITS_CMD})" -- "$cur"))
    elif [[ "$kind" == file ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
}}
complete -F _fleetctl fleetctl
"""


def _zsh(globals_: tuple[str, ...], found: tuple[Verb, ...], skip: str) -> str:
    cases = "".join(
        f"        {v.name}) flags=({' '.join(v.flags)}); kind={v.argument or 'none'} ;;\n"
        for v in found)
    return f"""#compdef fleetctl
# zsh completion for fleetctl; install: fleetctl completion zsh > "${{fpath[1]}}/_fleetctl"
_fleetctl() {{
    local verb="" kind=none i
    local -a flags
    for ((i = 2; i < CURRENT; i++)); do
        case "${{words[i]}}" in
            {skip}) ((i++)) ;;
            -*) ;;
            *) verb="${{words[i]}}"; break ;;
        esac
    done
    if [[ -z "$verb" ]]; then
        if [[ "$PREFIX" == -* ]]; then
            compadd -- {' '.join(globals_)}
        else
            compadd -- {' '.join(v.name for v in found)}
        fi
        return
    fi
    case "$verb" in
{cases}    esac
    if [[ "$PREFIX" == -* ]]; then
        compadd -- $flags
    elif [[ "$kind" == unit ]]; then
        compadd -- ${{(f)"$({UNITS_CMD})"}}
        _files
    elif [[ "$kind" == machine ]]; then
        compadd -- ${{(f)"$({MACHINES_CMD})"}}
    elif [[ "$kind" == host ]]; then
        compadd -- ${{(f)"$({MACHINES_CMD})"}} ${{(f)"$({UNITS_CMD})"}}
    elif [[ "$kind" == file ]]; then
        _files
    fi
}}
if [[ "$funcstack[1]" == _fleetctl ]]; then
    _fleetctl "$@"
else
    compdef _fleetctl fleetctl
fi
"""
