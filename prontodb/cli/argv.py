"""The one argv parser: what each word of a ``prontodb`` command line is (docs/cli.md).

:func:`classify` reads a command line against the declarations in :mod:`prontodb.cli.spec`
and returns a :class:`Call`: the global flags (given before or after the command, GNU style),
the command, its options and positionals, whether help or the version was asked for, and the
first usage problem, if any. The normal path hands the resolved call to click in a form click
cannot read differently; the rescue path asks the same Call whether the command takes piped
content and which address was typed. Nothing here imports click or touches a file.

Rules a user can rely on:

- ``--`` ends the options: every later word is a positional, dashes included.
- ``--flag=value`` always binds; ``--flag value`` binds the next word unless it is missing,
  starts with ``-`` or, for a global flag, is a command name or alias (a cursor really named
  ``set`` is written ``--cursor=set``). A flag missing its value is a usage problem that names
  the flag; it never eats the command word.
- Before the command word ``-pX``/``-nX`` mean ``-p X``/``-n X``. After it they are
  dash-leading values (``set ADDR -pa55word``): a usage problem with the ``--`` hint.
"""

from __future__ import annotations

from prontodb.cli.spec import (
    COMMANDS,
    ENGINES,
    GLOBAL_OPTIONS,
    HELP_FLAGS,
    SYNONYMS,
    VERSION_FLAG,
    Cmd,
    Opt,
    aliases,
    lookup,
    subcommands,
)

PROG = "prontodb"

_GLOBAL_BY_FLAG = {flag: opt for opt in GLOBAL_OPTIONS for flag in opt.flags}
_COMMAND_WORDS = frozenset(COMMANDS) | frozenset(aliases(COMMANDS))


class Call:
    """One classified command line. ``path`` is the canonical command path (``["set"]``,
    ``["cursor", "list"]``), empty when no command was resolved; ``unknown`` is the word that
    could not be resolved to a command. ``problem`` is the first usage error found (the rest of
    the line is still classified, so the rescue knows the command and the address)."""

    __slots__ = (
        "globals",
        "path",
        "cmd",
        "options",
        "positionals",
        "help",
        "version",
        "problem",
        "unknown",
        "lost_value",
        "quoted",
    )

    def __init__(self) -> None:
        self.globals: dict[str, str | bool] = {}
        self.path: list[str] = []
        self.cmd: Cmd | None = None
        self.options: dict[str, str | bool] = {}
        self.positionals: list[str] = []
        self.help = False
        self.version = False
        self.problem: str | None = None
        self.unknown: str | None = None
        #: A global flag missing its value: the line's meaning is unknown (§4: rescue).
        self.lost_value = False
        #: How many positionals came before ``--`` (None: no ``--``); words after it are
        #: values, never help.
        self.quoted: int | None = None

    def fail(self, message: str) -> None:
        """Record a usage problem (the first one wins)."""
        if self.problem is None:
            self.problem = message

    @property
    def resolved(self) -> bool:
        """True when the words name a command (a group without subcommand included)."""
        return self.cmd is not None and self.unknown is None

    @property
    def stops(self) -> bool:
        """True when help or the version was asked for: nothing runs, stdin stays unread."""
        return self.help or self.version

    @property
    def help_word(self) -> bool:
        """True when the command's only word is ``help`` (help, unless it can be an address
        there: the caller decides, it knows the defaults)."""
        return (
            self.cmd is not None
            and not self.cmd.group
            and self.positionals == ["help"]
            and self.quoted != 0
            and not self.options
        )

    @property
    def reads_stdin(self) -> bool:
        """True when the command's value comes from stdin: ``set`` without VALUE (or with
        ``-``/``--stdin``), ``stream`` without FILE (or with ``-``)."""
        if self.cmd is None or self.unknown is not None or self.stops:
            return False
        pos = self.positionals
        if self.cmd.stdin == "value":
            return bool(self.options.get("from_stdin")) or len(pos) < 2 or pos[1] == "-"
        if self.cmd.stdin == "file":
            return not pos or pos[0] == "-"
        return False

    @property
    def rescues(self) -> bool:
        """True when piped content must be rescued on any exit other than success: a command
        that stores its stdin (not a dry run), a line that resolves to no command (bare
        ``prontodb`` included: the content may have been meant for ``set``), or a line whose
        global flag lost its value (the words after it may mean something else)."""
        if self.stops:
            return False
        if self.cmd is None or self.unknown is not None or self.lost_value:
            return True
        return self.reads_stdin and not self.options.get("dry_run")

    @property
    def attempted(self) -> str | None:
        """The address the user typed for the content, if any."""
        if self.cmd is not None and self.cmd.stdin == "value" and self.unknown is None:
            return self.positionals[0] if self.positionals else None
        if self.cmd is None or self.unknown is not None:
            return self.positionals[0] if self.positionals else None
        return None

    def click_args(self) -> list[str]:
        """The call spelled so that click reads exactly what was classified: global flags
        first as ``--flag=value``, the command path, its options, then ``--`` and the
        positionals."""
        words: list[str] = []
        for opt in GLOBAL_OPTIONS:
            if opt.dest in self.globals:
                words += _spell(opt, self.globals[opt.dest])
        words += self.path
        if self.cmd is not None:
            for opt in self.cmd.opts:
                if opt.dest in self.options:
                    words += _spell(opt, self.options[opt.dest])
        if self.positionals:
            words += ["--", *self.positionals]
        return words


def _spell(opt: Opt, value: str | bool) -> list[str]:
    long = opt.flags[-1]
    if not opt.value:
        return [long] if value else []
    return [f"{long}={value}"]


def _find(opts: tuple[Opt, ...], flag: str) -> Opt | None:
    for opt in opts:
        if flag in opt.flags:
            return opt
    return None


def dash_hint(call: Call, word: str) -> str:
    """``values starting with '-' go after --: prontodb set ADDRESS -- -5``."""
    metavars = []
    if call.cmd is not None:
        for arg, _ in zip(call.cmd.args, call.positionals, strict=False):
            metavars.append(arg.metavar)
    line = " ".join([PROG, *call.path, *metavars, "--", word])
    return f"values starting with '-' go after --: {line}"


def suggestions(word: str, table: dict[str, Cmd] | None = None) -> list[str]:
    """Commands a mistyped ``word`` may have meant: synonyms (``list`` -> ``keys``), then
    close spellings of command names and aliases."""
    import difflib

    table = COMMANDS if table is None else table
    found: list[str] = []
    if table is COMMANDS and word in SYNONYMS:
        found.append(SYNONYMS[word])
    names = [*table, *aliases(table)]
    if table is COMMANDS:
        names += list(SYNONYMS)
    for close in difflib.get_close_matches(word, names, n=3, cutoff=0.6):
        target = SYNONYMS.get(close, close) if close not in table else close
        if close in aliases(table):
            target = close
        if target not in found:
            found.append(target)
    return found


def unknown_command(word: str, group: list[str]) -> str:
    """The usage message for an unknown command word, with suggestions."""
    table = subcommands(group[0]) if group else COMMANDS
    where = " ".join([PROG, *group])
    text = f"no such command '{word}' (see: {where} --help)"
    near = suggestions(word, table)
    if near:
        text += "; did you mean " + " or ".join(f"'{n}'" for n in near) + "?"
    return text


def classify(argv: list[str]) -> Call:
    """Classify ``argv`` (without the program name). Never raises for any list of strings."""
    call = Call()
    table: dict[str, Cmd] | None = COMMANDS  # where the next bare word is looked up
    only_positionals = False
    i, n = 0, len(argv)
    while i < n:
        word = argv[i]
        i += 1
        if only_positionals or word == "-" or not word.startswith("-"):
            if table is not None and not only_positionals:
                found = lookup(table, word)
                if found is not None:
                    call.cmd = found
                    call.path.append(found.name)
                    table = subcommands(found.name) if found.group else None
                    continue
                if call.cmd is not None and call.cmd.group and word == "help":
                    call.help = True
                    table = None
                    continue
                call.unknown = word
                call.fail(unknown_command(word, call.path))
                table = None
                continue
            call.positionals.append(word)
            continue
        if word == "--":
            only_positionals = True
            if call.quoted is None:
                call.quoted = len(call.positionals)
            continue
        if word in HELP_FLAGS:
            call.help = True
            continue
        if word == VERSION_FLAG:
            call.version = True
            continue
        i = _option(call, argv, i, word, before_command=call.cmd is None)
    _check_arity(call)
    return call


def _option(call: Call, argv: list[str], i: int, word: str, *, before_command: bool) -> int:
    """Classify the option ``word`` (``argv[i]`` is the next word); return the next index."""
    if word.startswith("--"):
        flag, eq, attached = word.partition("=")
        value: str | None = attached if eq else None
    else:
        flag, attached = word[:2], word[2:]
        value = attached or None
    opt = _GLOBAL_BY_FLAG.get(flag)
    is_global = opt is not None
    if opt is None and call.cmd is not None and call.unknown is None:
        opt = _find(call.cmd.opts, flag)
    if opt is None:
        if before_command or call.unknown is not None:
            call.fail(f"no such option: {word} (see: {PROG} --help)")
        else:
            call.fail(f"no such option: {word}; {dash_hint(call, word)}")
        return i
    if not word.startswith("--") and attached and is_global and not before_command:
        # `set ADDR -pa55word`: after the command an attached short value is a dash value.
        call.fail(f"no such option: {word}; {dash_hint(call, word)}")
        return i
    if not opt.value:
        if value is not None:
            call.fail(f"option {flag} takes no value (see: {PROG} {' '.join(call.path)} --help)")
            return i
        (call.globals if is_global else call.options)[opt.dest] = True
        return i
    if value is None:
        following = argv[i] if i < len(argv) else None
        if (
            following is None
            or (following.startswith("-") and following != "-")
            or (is_global and following in _COMMAND_WORDS)
        ):
            spelled = "/".join(opt.flags)
            call.lost_value = call.lost_value or is_global
            call.fail(
                f"option {spelled} needs a value"
                + (
                    f" (a value that is a command name is written {opt.flags[-1]}={following})"
                    if is_global and following in _COMMAND_WORDS
                    else ""
                )
            )
            return i
        value = following
        i += 1
    choices = _choices(opt)
    if choices is not None and value not in choices:
        call.fail(
            f"invalid value for {'/'.join(opt.flags)}: {value!r} is not one of "
            + ", ".join(choices)
        )
        return i
    (call.globals if is_global else call.options)[opt.dest] = value
    return i


def _choices(opt: Opt) -> tuple[str, ...] | None:
    """The values ``opt`` accepts; the registered engines are asked of the registry only when
    such an option is given (it is never on a hot command)."""
    if opt.choices == ENGINES:
        from prontodb import backends

        return tuple(backends.engine_names(selectable_only=True))
    if isinstance(opt.choices, str):
        return (opt.choices,)
    return opt.choices


def _check_arity(call: Call) -> None:
    cmd = call.cmd
    if cmd is None:
        if call.unknown is None and call.positionals:
            call.fail(
                f"extra argument '{call.positionals[0]}' with no command (see: {PROG} --help)"
            )
        return
    if cmd.group or call.unknown is not None or call.stops or call.help_word:
        return
    slots = cmd.args
    many = any(a.many for a in slots)
    if not many and len(call.positionals) > len(slots):
        extra = call.positionals[len(slots)]
        call.fail(f"extra argument '{extra}' (see: {PROG} {' '.join(call.path)} --help)")
        return
    required = sum(1 for a in slots if a.required)
    if len(call.positionals) < required:
        missing = slots[len(call.positionals)]
        call.fail(f"missing argument {missing.metavar} (see: {PROG} {' '.join(call.path)} --help)")
