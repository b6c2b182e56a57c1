"""Every command's arguments and options, declared once, as plain data (docs/cli.md).

Two things are built from these declarations and nothing else: the argv classifier
(:mod:`prontodb.cli.argv`, which decides what each word of a command line is, for the normal
path and the rescue path alike) and the click commands (:mod:`prontodb.cli._build`, for help,
completion and running). This module imports nothing, so a click-free hot path can read it.

A declaration names parameters by their Python names (``dest``), the keyword arguments the
command function receives.
"""

from __future__ import annotations


class Opt:
    """An option: its spellings (``--ttl``, ``-o``), whether it takes a value, and its help.

    ``choices`` restricts the value (:data:`ENGINES`: the registered engines); ``default`` is
    what the function gets when the option is absent; ``complete`` names a completion source
    (``"cursor"`` or ``"address"``)."""

    __slots__ = ("dest", "flags", "value", "metavar", "help", "choices", "default", "complete")

    def __init__(
        self,
        dest: str,
        *flags: str,
        value: bool = False,
        metavar: str | None = None,
        help: str = "",
        choices: tuple[str, ...] | str | None = None,
        default: object = None,
        complete: str | None = None,
    ) -> None:
        self.dest = dest
        self.flags = flags
        self.value = value
        self.metavar = metavar
        self.help = help
        self.choices = choices
        self.default = default
        self.complete = complete


class Arg:
    """A positional argument. ``many``: any number (at least one when ``required``)."""

    __slots__ = ("dest", "metavar", "required", "many", "default", "complete", "address")

    def __init__(
        self,
        dest: str,
        metavar: str | None = None,
        *,
        required: bool = True,
        many: bool = False,
        default: object = None,
        complete: str | None = None,
        address: bool = False,
    ) -> None:
        self.dest = dest
        self.metavar = metavar or dest.upper()
        self.required = required
        self.many = many
        self.default = default
        self.complete = complete
        #: True when the argument is an entry address (so ``help`` may be a key there).
        self.address = address


class Cmd:
    """A command: where its function lives, its parameters, and how it treats stdin.

    ``stdin`` is ``"value"`` for a command whose content comes from stdin when no VALUE is
    given (``set``), ``"file"`` when it reads stdin unless FILE names a file (``stream``), and
    ``""`` for a command that never reads stdin content to store. ``hot`` marks the one-shot
    commands a click-free path serves. ``group``: the command has subcommands."""

    __slots__ = ("name", "module", "args", "opts", "stdin", "hot", "group", "aliases")

    def __init__(
        self,
        name: str,
        module: str,
        args: tuple[Arg, ...] = (),
        opts: tuple[Opt, ...] = (),
        *,
        stdin: str = "",
        hot: bool = False,
        group: bool = False,
        aliases: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.module = module
        self.args = args
        self.opts = opts
        self.stdin = stdin
        self.hot = hot
        self.group = group
        self.aliases = aliases


#: Global flags: they work before or after the command (GNU style).
GLOBAL_OPTIONS: tuple[Opt, ...] = (
    Opt(
        "user",
        "--user",
        value=True,
        metavar="U",
        help="User layer (env PRONTO_USER; default 'default').",
    ),
    Opt(
        "cursor",
        "--cursor",
        value=True,
        metavar="C",
        complete="cursor",
        help="Named cursor to use (env PRONTO_CURSOR).",
    ),
    Opt(
        "database",
        "--database",
        value=True,
        metavar="PATH",
        help="Store path or URL, engine sniffed from the file (env PRONTO_DB).",
    ),
    Opt("meta", "--meta", value=True, metavar="M", help="Meta layer inside the store."),
    Opt(
        "project",
        "-p",
        "--project",
        value=True,
        metavar="P",
        help="Default project for partial addresses and listings.",
    ),
    Opt(
        "namespace",
        "-n",
        "--namespace",
        value=True,
        metavar="N",
        help="Default namespace for partial addresses and listings.",
    ),
    Opt(
        "ns_delim",
        "--ns-delim",
        value=True,
        metavar="C",
        help="Address delimiter: one of . : / | (default .).",
    ),
    Opt(
        "as_json",
        "--json",
        help="Machine-readable output (JSON); errors as one JSON object on stderr.",
    ),
)
#: Flags that stop at once: help and version.
HELP_FLAGS = ("-h", "--help")
VERSION_FLAG = "--version"

_CURSOR_FLAGS = (
    Opt(
        "from_cursor",
        "--from-cursor",
        value=True,
        metavar="C",
        complete="cursor",
        help="Read SRC through cursor C.",
    ),
    Opt(
        "to_cursor",
        "--to-cursor",
        value=True,
        metavar="C",
        complete="cursor",
        help="Write DST through cursor C.",
    ),
)
#: ``choices`` of an option whose values are the registered engines (asked of the registry
#: when the option is used: outside engines register through entry points).
ENGINES = "engines"
_ADDR = Arg("address", "ADDRESS", complete="address", address=True)
_ADDRESSES = Arg("addresses", "ADDRESS...", many=True, complete="address", address=True)
_COORD = "prontodb.cli.coordination"
_SCOPE = (Arg("scope", required=False), Arg("pattern", required=False))
_LISTING = (
    Opt("all_scopes", "--all", help="Everything, whatever -p/-n or the cursor's defaults say."),
    Opt("full", "--full", help="Print full addresses."),
)
_DATA = "prontodb.cli.data"
_LIST = "prontodb.cli.listing"
_ADMIN = "prontodb.cli.admin"
_CURSOR = "prontodb.cli.cursor"
_PORT = "prontodb.cli.portable"

COMMANDS: dict[str, Cmd] = {
    c.name: c
    for c in (
        Cmd(
            "set",
            _DATA,
            (
                Arg("address", "ADDRESS", required=False, complete="address", address=True),
                Arg("value", required=False),
            ),
            (
                Opt(
                    "ttl",
                    "--ttl",
                    value=True,
                    metavar="DURATION",
                    help="Expire after DURATION (90, 15m, 1h30m, 2w).",
                ),
                Opt("keep_ttl", "--keep-ttl", help="Keep the entry's current deadline."),
                Opt("from_stdin", "--stdin", help="Read the value from stdin (same as VALUE '-')."),
                Opt("nx", "--nx", help="Only if ADDRESS has no live entry (else exit 4)."),
                Opt("xx", "--xx", help="Only if ADDRESS has a live entry (else exit 4)."),
                Opt(
                    "if_version",
                    "--if-version",
                    value=True,
                    metavar="N",
                    help="Only if the live entry's version is N (else exit 4).",
                ),
            ),
            stdin="value",
            hot=True,
        ),
        Cmd(
            "get",
            _DATA,
            (_ADDRESSES,),
            (
                Opt(
                    "default",
                    "--default",
                    value=True,
                    metavar="V",
                    help="Print V for a missing address (exit 0).",
                ),
                Opt("raw", "--raw", help="Write binary values to a terminal as they are."),
            ),
            hot=True,
        ),
        Cmd("exists", _DATA, (_ADDRESSES,), hot=True),
        Cmd(
            "del",
            _DATA,
            (
                Arg(
                    "addresses",
                    "ADDRESS...",
                    required=False,
                    many=True,
                    complete="address",
                    address=True,
                ),
            ),
            (
                Opt(
                    "scope",
                    "--scope",
                    value=True,
                    metavar="SCOPE",
                    help="Delete every entry of a project or namespace.",
                ),
                Opt("dry_run", "--dry-run", help="With --scope: print what would be deleted."),
            ),
            hot=True,
        ),
        Cmd("incr", _COORD, (_ADDR, Arg("by", "BY", required=False, default="1")), hot=True),
        Cmd("decr", _COORD, (_ADDR, Arg("by", "BY", required=False, default="1")), hot=True),
        Cmd(
            "watch",
            _COORD,
            (_ADDR,),
            (
                Opt(
                    "timeout",
                    "--timeout",
                    value=True,
                    metavar="DURATION",
                    help="Give up after DURATION (exit 2).",
                ),
            ),
        ),
        Cmd("ttl", _DATA, (_ADDR,), hot=True),
        Cmd("expire", _DATA, (_ADDR, Arg("seconds", "DURATION")), hot=True),
        Cmd("persist", _DATA, (_ADDR,), hot=True),
        Cmd(
            "copy",
            _DATA,
            (Arg("src", "SRC", complete="address", address=True), Arg("dst", "DST", address=True)),
            (
                Opt("keep_ttl", "--keep-ttl", help="Give DST the source's remaining TTL."),
                Opt("keep", "--keep", help="Keep a pipe.cache source instead of removing it."),
                Opt("replace", "--replace", help="Overwrite a live DST (otherwise exit 4)."),
                *_CURSOR_FLAGS,
            ),
            hot=True,
        ),
        Cmd(
            "move",
            _DATA,
            (Arg("src", "SRC", complete="address", address=True), Arg("dst", "DST", address=True)),
            (
                Opt("keep_ttl", "--keep-ttl", help="Give DST the source's remaining TTL."),
                Opt("replace", "--replace", help="Overwrite a live DST (otherwise exit 4)."),
                *_CURSOR_FLAGS,
            ),
            hot=True,
        ),
        Cmd("keys", _LIST, _SCOPE, _LISTING, hot=True, aliases=("list-keys", "ls")),
        Cmd("scan", _LIST, _SCOPE, _LISTING, hot=True, aliases=("scan-pairs",)),
        Cmd("projects", _LIST),
        Cmd("namespaces", _LIST, (Arg("project", required=False),)),
        Cmd("nss", _LIST),
        Cmd("caches", _LIST),
        Cmd(
            "create-cache",
            _ADMIN,
            (Arg("namespace", "PROJECT.NAMESPACE"), Arg("seconds", "SECONDS")),
        ),
        Cmd("drop-cache", _ADMIN, (Arg("namespace", "PROJECT.NAMESPACE"),)),
        Cmd("gc", _ADMIN),
        Cmd("info", _ADMIN),
        Cmd("version", _ADMIN),
        Cmd("help", _ADMIN, (Arg("command", "COMMAND", required=False, many=True),)),
        Cmd("completion", _ADMIN, (Arg("shell", "bash|zsh|fish"),)),
        Cmd("doctor", "prontodb.cli.doctor"),
        Cmd(
            "stream",
            "prontodb.cli.stream",
            (Arg("file", "[FILE]", required=False),),
            (Opt("dry_run", "--dry-run", help="Validate and print the plan; write nothing."),),
            stdin="file",
        ),
        Cmd(
            "export",
            _PORT,
            (Arg("scope", required=False),),
            (
                Opt(
                    "output",
                    "-o",
                    "--output",
                    value=True,
                    metavar="FILE",
                    help="Write to FILE (0600) instead of stdout.",
                ),
                Opt(
                    "fmt",
                    "--format",
                    value=True,
                    choices=("jsonl", "stream"),
                    default="jsonl",
                    help="jsonl: lossless JSON Lines; stream: tokens for 'prontodb stream'.",
                ),
            ),
        ),
        Cmd(
            "import",
            _PORT,
            (Arg("file", "[FILE|-]", required=False, default="-"),),
            (
                Opt(
                    "on_conflict",
                    "--on-conflict",
                    value=True,
                    choices=("overwrite", "skip", "fail"),
                    default="overwrite",
                    help="An address that already holds a live entry: replace it, keep it,"
                    " or import nothing.",
                ),
            ),
        ),
        Cmd(
            "backup",
            _PORT,
            (),
            (
                Opt(
                    "output",
                    "-o",
                    "--output",
                    value=True,
                    metavar="FILE",
                    help="Archive path (default: a timestamped file in the backups directory).",
                ),
                Opt("list_only", "--list", help="List the archives in the backups dir."),
            ),
        ),
        Cmd(
            "restore",
            _PORT,
            (Arg("file", "FILE"),),
            (
                Opt(
                    "into",
                    "--into",
                    value=True,
                    metavar="CURSOR",
                    complete="cursor",
                    help="Restore into CURSOR's store.",
                ),
                Opt(
                    "replace",
                    "--replace",
                    help="Clear a non-empty target (every layer) in the same step.",
                ),
            ),
        ),
        Cmd("cursor", _CURSOR, group=True),
    )
}

#: Subcommands of ``cursor``.
CURSOR_COMMANDS: dict[str, Cmd] = {
    c.name: c
    for c in (
        Cmd(
            "set",
            _CURSOR,
            (Arg("name", complete="cursor"), Arg("path", required=False)),
            (
                Opt(
                    "backend",
                    "--backend",
                    value=True,
                    choices=ENGINES,
                    help="Engine of a new store (default: the existing store's own, else the"
                    " extension, else sqlite).",
                ),
                Opt(
                    "durability",
                    "--durability",
                    value=True,
                    choices=("normal", "full"),
                    help="normal (default): a killed process loses nothing;"
                    " full: survives power loss too.",
                ),
            ),
        ),
        Cmd("list", _CURSOR),
        Cmd("show", _CURSOR, (Arg("name", complete="cursor"),)),
        Cmd("active", _CURSOR),
        Cmd(
            "use",
            _CURSOR,
            (Arg("name", required=False, complete="cursor"),),
            (Opt("clear", "--clear", help="Forget the selection (use the default store)."),),
        ),
        Cmd(
            "delete",
            _CURSOR,
            (Arg("name", complete="cursor"),),
            (Opt("purge", "--purge", help="Also remove the store's files (the data)."),),
        ),
        Cmd(
            "migrate",
            _PORT,
            (Arg("name", complete="cursor"),),
            (
                Opt(
                    "backend",
                    "--backend",
                    value=True,
                    choices=ENGINES,
                    help="Engine of the new store.",
                ),
                Opt(
                    "path",
                    "--to",
                    "--path",
                    value=True,
                    metavar="PATH|URL",
                    help="New store location (default: the engine's default location"
                    " for the cursor; a redis store needs its URL, whose scheme implies"
                    " --backend).",
                ),
                Opt(
                    "remove_old", "--remove-old", help="Delete the old store once the cursor moved."
                ),
                Opt(
                    "replace_target",
                    "--replace-target",
                    help="Replace a store already at the new location (such as the copy an"
                    " earlier migrate kept).",
                ),
            ),
        ),
    )
}

#: Words users type for a command that has another name (offered as suggestions only).
SYNONYMS: dict[str, str] = {
    "list": "keys",
    "rm": "del",
    "delete": "del",
    "remove": "del",
    "rename": "move",
    "mv": "move",
    "cp": "copy",
    "read": "get",
    "put": "set",
    "write": "set",
}


def subcommands(group: str) -> dict[str, Cmd]:
    """The subcommands of ``group`` (only ``cursor`` has any)."""
    return CURSOR_COMMANDS if group == "cursor" else {}


def aliases(table: dict[str, Cmd]) -> dict[str, str]:
    """Every alias in ``table`` mapped to its command's name."""
    return {alias: c.name for c in table.values() for alias in c.aliases}


def lookup(table: dict[str, Cmd], word: str) -> Cmd | None:
    """The command ``word`` names in ``table`` (by name or alias), or None."""
    found = table.get(word)
    if found is not None:
        return found
    name = aliases(table).get(word)
    return table[name] if name is not None else None
