"""The orchestrators.yaml file: find it, read it into frozen dataclasses, report every problem at once."""

import math
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from dpsk_orch.config_yaml import ConfigProblem, Node, Reader, compose_yaml, describe, has_literal_text

__all__ = [
    "DEFAULT_USERNAME_TEMPLATE", "REGION_API_URLS", "Config", "ConfigError", "ConfigProblem",
    "ControllerConfig", "DeleteGuard", "DiscoveryConfig", "OrchestratorConfig", "PoolRef",
    "find_config_path", "load_config", "render_username", "resolve_state_db",
]

REGION_API_URLS = {
    "na": "https://api.ruckus.cloud",
    "eu": "https://api.eu.ruckus.cloud",
    "asia": "https://api.asia.ruckus.cloud",
}
DEFAULT_USERNAME_TEMPLATE = "{username} [{pool_name}]"
CONFIG_FILE_NAME = "orchestrators.yaml"
SYSTEM_CONFIG_PATH = Path("/etc/dpsk-orch") / CONFIG_FILE_NAME
STATE_DB_NAME = "state.db"
DEFAULT_MAX_REQUESTS_PER_MINUTE = 1800
MAX_REQUESTS_PER_MINUTE = 2000  # RuckusONE's limit per tenant
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64
DEFAULT_MAX_DELETES = 10
VLAN_MIN, VLAN_MAX = 1, 4094
TEMPLATE_PLACEHOLDERS = ("username", "pool_name", "vlan")
REMOVALS_MODES = ("flag", "delete")
GROUP_OR_OTHER_PERMISSIONS = 0o077

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_TOP_KEYS = ("version", "state", "controllers", "orchestrators")
_CONTROLLER_KEYS = ("region", "api_url", "tenant_id", "client_id", "client_secret", "client_secret_file",
                    "max_requests_per_minute", "concurrency")
_ORCHESTRATOR_KEYS = ("controller", "tenant_id", "venue_id", "site_wide_pool", "source_pools", "discovery",
                      "username_template", "removals", "max_deletes", "enabled")


@dataclass(frozen=True)
class ControllerConfig:
    """One RuckusONE application token and how hard to drive it."""

    name: str
    api_url: str
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    max_requests_per_minute: int = DEFAULT_MAX_REQUESTS_PER_MINUTE
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass(frozen=True)
class PoolRef:
    """A DPSK pool named by its name or its id; vlan is the fallback for its passphrases that have none."""

    name: str | None = None
    id: str | None = None
    vlan: int | None = None

    def label(self) -> str:
        """The name, else "id:<id>"."""
        return self.name if self.name is not None else f"id:{self.id}"


@dataclass(frozen=True)
class DiscoveryConfig:
    """Whether and how to find source pools on the venue's networks (globs match case-insensitively)."""

    enabled: bool = False
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeleteGuard:
    """The most deletes one run may make: a count, or a percent of the managed passphrases."""

    count: int | None = None
    percent: float | None = None

    def __post_init__(self) -> None:
        if (self.count is None) == (self.percent is None):
            raise ValueError("a DeleteGuard takes exactly one of count or percent")

    def limit(self, managed: int) -> int:
        """The deletes allowed when `managed` passphrases are managed; a percent rounds down."""
        if self.count is not None:
            return self.count
        return max(0, math.floor(Decimal(str(self.percent)) * managed / 100))

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


@dataclass(frozen=True)
class OrchestratorConfig:
    """One site-wide pool kept as a replica of its source pools."""

    name: str
    controller: str
    site_wide_pool: PoolRef
    tenant_id: str | None = None
    venue_id: str | None = None
    source_pools: tuple[PoolRef, ...] = ()
    discovery: DiscoveryConfig = DiscoveryConfig()
    username_template: str = DEFAULT_USERNAME_TEMPLATE
    removals: str = "flag"
    max_deletes: DeleteGuard = DeleteGuard(count=DEFAULT_MAX_DELETES)
    enabled: bool = True


@dataclass(frozen=True)
class Config:
    """A checked config file."""

    path: Path
    controllers: Mapping[str, ControllerConfig]
    orchestrators: Mapping[str, OrchestratorConfig]
    state_db: Path | None = None

    def controller_for(self, orchestrator: OrchestratorConfig) -> ControllerConfig:
        return self.controllers[orchestrator.controller]


class ConfigError(Exception):
    """Every problem found in a config file, one per line of the message; never holds a secret value."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class _Source:
    """Where the file came from: secret files and the state db are relative to its directory."""

    directory: Path
    mode: int
    environ: Mapping[str, str]


def find_config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path:
    """--config, else $DPSK_ORCH_CONFIG, else the first default that exists; ConfigError if none does."""
    for given, origin in ((explicit, "--config"), (environ.get("DPSK_ORCH_CONFIG"), "DPSK_ORCH_CONFIG")):
        if given:
            path = Path(given)
            if not path.is_file():
                problem = ConfigProblem(str(path), None, "", f"config file not found (from {origin})")
                raise ConfigError([problem])
            return path
    candidates = [
        Path(CONFIG_FILE_NAME),
        _xdg_home(environ, "XDG_CONFIG_HOME", Path(".config")) / "dpsk-orch" / CONFIG_FILE_NAME,
        SYSTEM_CONFIG_PATH,
    ]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        looked = ", ".join(str(path) for path in candidates)
        message = f"no config file found; looked in {looked}; pass --config PATH or set DPSK_ORCH_CONFIG"
        raise ConfigError([ConfigProblem("", None, "", message)])
    return found


def resolve_state_db(config: Config | None, cli_db: Path | None, environ: Mapping[str, str]) -> Path:
    """--db, else $DPSK_ORCH_DB, else the config's state.db, else $STATE_DIRECTORY, else XDG state."""
    if cli_db is not None:
        return cli_db
    if environ.get("DPSK_ORCH_DB"):
        return Path(environ["DPSK_ORCH_DB"])
    if config is not None and config.state_db is not None:
        return config.state_db
    state_directory = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory:
        return Path(state_directory) / STATE_DB_NAME
    return _xdg_home(environ, "XDG_STATE_HOME", Path(".local/state")) / "dpsk-orch" / STATE_DB_NAME


def render_username(template: str, username: str, pool_name: str, vlan: int | None) -> str:
    """The site-wide username of a passphrase; {vlan} renders empty when there is none."""
    return template.format(username=username, pool_name=pool_name, vlan="" if vlan is None else vlan)


def load_config(path: Path, environ: Mapping[str, str] = os.environ) -> Config:
    """Read and check the config file and the secret files it names; raise ConfigError with every problem."""
    file = str(path)
    try:
        with path.open(encoding="utf-8") as handle:
            text = handle.read()
            mode = os.fstat(handle.fileno()).st_mode
    except OSError as error:
        problem = ConfigProblem(file, None, "", f"cannot read the file: {error.strerror}")
        raise ConfigError([problem]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(file, None, "", "the file is not UTF-8 text")]) from None
    root, problems = compose_yaml(text, file)
    if root is None:
        raise ConfigError(problems)
    reader = Reader(file, environ)
    reader.problems.extend(problems)
    config = _read_config(root, path, _Source(path.parent, mode, environ), reader)
    if reader.problems:
        raise ConfigError(sorted(dict.fromkeys(reader.problems), key=lambda problem: problem.line or 0))
    return config


def _read_config(root: Node, path: Path, source: _Source, reader: Reader) -> Config:
    fields = reader.mapping(root, "", _TOP_KEYS, required=("version", "controllers", "orchestrators")) or {}
    version = fields.get("version")
    if version is not None and (type(version.value) is not int or version.value != 1):
        reader.problem(version.line, "version", "must be 1, the only version this dpsk-orch reads")
    state_db = reader.optional(fields, "state", "", lambda node, key: _read_state(node, key, source, reader))
    controller_nodes = reader.entries(fields["controllers"], "controllers") if "controllers" in fields else {}
    controllers = {name: _read_controller(name, node, source, reader)
                   for name, node in controller_nodes.items()}
    orchestrators = _read_orchestrators(fields.get("orchestrators"), controllers, reader)
    return Config(
        path=path,
        controllers=MappingProxyType({name: c for name, c in controllers.items() if c is not None}),
        orchestrators=MappingProxyType(orchestrators),
        state_db=state_db,
    )


def _read_state(node: Node, key: str, source: _Source, reader: Reader) -> Path | None:
    fields = reader.mapping(node, key, ("db",))
    db = reader.optional(fields or {}, "db", key, reader.text)
    return None if db is None else _local_path(db, source)


def _local_path(text: str, source: _Source) -> Path:
    """A path from the file: `~` is the home directory; a relative path starts at the file's directory."""
    if text == "~" or text.startswith("~/"):
        return _home(source.environ) / text[2:]
    return source.directory / text


def _check_name(name: str, node: Node, path: str, reader: Reader) -> None:
    if not _NAME.fullmatch(name):
        reader.problem(node.key_line, path, "a name starts with a letter or digit and holds only letters, "
                                            "digits, `_`, `.` and `-`")


def _read_controller(name: str, node: Node, source: _Source, reader: Reader) -> ControllerConfig | None:
    path = f"controllers.{name}"
    _check_name(name, node, path, reader)
    fields = reader.mapping(node, path, _CONTROLLER_KEYS, required=("tenant_id", "client_id"))
    if fields is None:
        return None
    api_url = _read_api_url(fields, node, path, reader)
    tenant_id = reader.optional(fields, "tenant_id", path, reader.text)
    client_id = reader.optional(fields, "client_id", path, reader.text)
    client_secret = _read_client_secret(fields, node, path, source, reader)
    rate = reader.optional(fields, "max_requests_per_minute", path,
                           lambda n, k: reader.integer(n, k, 1, MAX_REQUESTS_PER_MINUTE))
    concurrency = reader.optional(fields, "concurrency", path,
                                  lambda n, k: reader.integer(n, k, 1, MAX_CONCURRENCY))
    if api_url is None or tenant_id is None or client_id is None or client_secret is None:
        return None
    return ControllerConfig(
        name=name, api_url=api_url, tenant_id=tenant_id, client_id=client_id, client_secret=client_secret,
        max_requests_per_minute=rate or DEFAULT_MAX_REQUESTS_PER_MINUTE,
        concurrency=concurrency or DEFAULT_CONCURRENCY,
    )


def _read_api_url(fields: dict[str, Node], node: Node, path: str, reader: Reader) -> str | None:
    """api_url when given (without a trailing slash), else the URL of the region."""
    if "api_url" in fields:
        return _read_url(fields["api_url"], f"{path}.api_url", reader)
    if "region" not in fields:
        reader.problem(node.key_line, path, f"needs `region` ({', '.join(REGION_API_URLS)}) or `api_url`")
        return None
    region = reader.text(fields["region"], f"{path}.region")
    if region is not None and region.lower() not in REGION_API_URLS:
        reader.problem(fields["region"].line, f"{path}.region",
                       f"must be one of {', '.join(REGION_API_URLS)} (got `{region}`), or set api_url")
        return None
    return REGION_API_URLS[region.lower()] if region else None


def _read_url(node: Node, key: str, reader: Reader) -> str | None:
    url = reader.text(node, key)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        reader.problem(node.line, key, "must be an http:// or https:// URL")
        return None
    return url.rstrip("/")


def _read_client_secret(fields: dict[str, Node], node: Node, path: str, source: _Source,
                        reader: Reader) -> str | None:
    secret_node = fields.get("client_secret")
    key = f"{path}.client_secret"
    if secret_node is not None and secret_node.text is not None and has_literal_text(secret_node.text) \
            and source.mode & GROUP_OR_OTHER_PERMISSIONS:
        reader.problem(secret_node.line, key,
                       f"is written in the file, which group or others may access (mode "
                       f"{source.mode & 0o777:04o}): run `chmod 600 {reader.file}`, or supply it with "
                       "${VAR} or client_secret_file")
    if (secret_node is None) == ("client_secret_file" not in fields):
        reader.problem(node.key_line, path, "set exactly one of client_secret or client_secret_file")
        return None
    if secret_node is None:
        return _read_secret_file(fields["client_secret_file"], f"{path}.client_secret_file", source, reader)
    return reader.text(secret_node, key)


def _read_secret_file(node: Node, key: str, source: _Source, reader: Reader) -> str | None:
    """The stripped contents of a secret file; problems name the path, never the contents."""
    name = reader.text(node, key)
    if name is None:
        return None
    secret_path = _local_path(name, source)
    try:
        with secret_path.open(encoding="utf-8") as handle:
            secret = handle.read().strip()
            mode = os.fstat(handle.fileno()).st_mode
    except FileNotFoundError:
        reason = "does not exist"
    except PermissionError:
        reason = "is not readable by this user"
    except IsADirectoryError:
        reason = "is a directory"
    except (OSError, UnicodeDecodeError):
        reason = "cannot be read as UTF-8 text"
    else:
        if not secret:
            reason = "is empty"
        elif mode & GROUP_OR_OTHER_PERMISSIONS:
            reason = (f"may be read by group or others (mode {mode & 0o777:04o}): run `chmod 600 {secret_path}` "
                      "(or hand it over as a systemd credential)")
        else:
            return secret
    reader.problem(node.line, key, f"secret file {secret_path} {reason}")
    return None


def _read_orchestrators(node: Node | None, controllers: Mapping[str, ControllerConfig | None],
                        reader: Reader) -> dict[str, OrchestratorConfig]:
    if node is None:
        return {}
    entries = reader.entries(node, "orchestrators")
    if not entries and isinstance(node.value, dict):
        reader.problem(node.line, "orchestrators", "must define at least one orchestrator")
    orchestrators = {}
    for name, entry in entries.items():
        orchestrator = _read_orchestrator(name, entry, controllers, reader)
        if orchestrator is not None:
            orchestrators[name] = orchestrator
    _check_shared_site_wide_pools(orchestrators, entries, controllers, reader)
    _check_sources_not_site_wide(orchestrators, entries, controllers, reader)
    return orchestrators


def _read_orchestrator(name: str, node: Node, controllers: Mapping[str, ControllerConfig | None],
                       reader: Reader) -> OrchestratorConfig | None:
    path = f"orchestrators.{name}"
    _check_name(name, node, path, reader)
    fields = reader.mapping(node, path, _ORCHESTRATOR_KEYS, required=("controller", "site_wide_pool"))
    if fields is None:
        return None
    controller = reader.optional(fields, "controller", path, reader.text)
    if controller is not None and controller not in controllers:
        defined = ", ".join(controllers) or "none"
        reader.problem(fields["controller"].line, f"{path}.controller",
                       f"controller `{controller}` is not defined under controllers (defined: {defined})")
    site_wide = reader.optional(fields, "site_wide_pool", path,
                                lambda n, k: _read_pool(n, k, reader, ("name", "id")))
    source_pools = reader.optional(fields, "source_pools", path,
                                   lambda n, k: _read_source_pools(n, k, site_wide, reader)) or ()
    discovery = reader.optional(fields, "discovery", path, lambda n, k: _read_discovery(n, k, reader))
    discovery = discovery or DiscoveryConfig()
    _check_pool_sources(fields, node, path, source_pools, discovery, reader)
    template = reader.optional(fields, "username_template", path, lambda n, k: _read_template(n, k, reader))
    removals = reader.optional(fields, "removals", path, lambda n, k: _read_removals(n, k, reader))
    max_deletes = reader.optional(fields, "max_deletes", path, lambda n, k: _read_delete_guard(n, k, reader))
    enabled = reader.optional(fields, "enabled", path, reader.boolean)
    tenant_id = reader.optional(fields, "tenant_id", path, reader.text)
    venue_id = reader.optional(fields, "venue_id", path, reader.text)
    if controller is None or site_wide is None:
        return None
    return OrchestratorConfig(
        name=name, controller=controller, site_wide_pool=site_wide, tenant_id=tenant_id, venue_id=venue_id,
        source_pools=source_pools, discovery=discovery,
        username_template=template or DEFAULT_USERNAME_TEMPLATE,
        removals=removals or "flag",
        max_deletes=max_deletes or DeleteGuard(count=DEFAULT_MAX_DELETES),
        enabled=enabled if enabled is not None else True,
    )


def _check_pool_sources(fields: dict[str, Node], node: Node, path: str, source_pools: tuple[PoolRef, ...],
                        discovery: DiscoveryConfig, reader: Reader) -> None:
    """An orchestrator needs source pools listed or discovered, and discovery needs a venue."""
    listed = fields.get("source_pools")
    if (listed is None or listed.value == []) and not discovery.enabled:
        reader.problem(node.key_line, path,
                       "needs source_pools, or discovery with `enabled: true` to find them")
    if discovery.enabled and "venue_id" not in fields:
        enabled = fields["discovery"].value["enabled"]
        reader.problem(enabled.line, f"{path}.discovery.enabled",
                       "discovery needs venue_id: the venue whose networks are searched for pools")


def _read_pool(node: Node, key: str, reader: Reader, allowed: tuple[str, ...]) -> PoolRef | None:
    """A pool name, or a mapping with exactly one of name or id (and, where allowed, a fallback vlan)."""
    if not isinstance(node.value, dict):
        name = reader.text(node, key, expected="a pool name or a mapping with `name` or `id`")
        return None if name is None else PoolRef(name=name)
    fields = reader.mapping(node, key, allowed) or {}
    if ("name" in fields) == ("id" in fields):
        reader.problem(node.line, key, "give exactly one of `name` or `id`")
        return None
    name = reader.optional(fields, "name", key, reader.text)
    pool_id = reader.optional(fields, "id", key, reader.text)
    vlan = reader.optional(fields, "vlan", key, lambda n, k: reader.integer(n, k, VLAN_MIN, VLAN_MAX))
    if name is None and pool_id is None:
        return None
    return PoolRef(name=name, id=pool_id, vlan=vlan)


def _pool_keys(pool: PoolRef) -> set[str]:
    """What identifies a pool: its name (case-insensitively) and its id."""
    keys = {f"name:{pool.name.casefold()}"} if pool.name else set()
    return keys | ({f"id:{pool.id.casefold()}"} if pool.id else set())


def _read_source_pools(node: Node, key: str, site_wide: PoolRef | None,
                       reader: Reader) -> tuple[PoolRef, ...] | None:
    if not isinstance(node.value, list):
        reader.problem(node.line, key,
                       f"must be a list of pool names or {{id: ...}} (got {describe(node.value)})")
        return None
    forbidden = _pool_keys(site_wide) if site_wide else set()
    pools: list[PoolRef] = []
    for index, item in enumerate(node.value):
        item_key = f"{key}[{index}]"
        pool = _read_pool(item, item_key, reader, ("name", "id", "vlan"))
        if pool is None:
            continue
        if _pool_keys(pool) & forbidden:
            reader.problem(item.line, item_key,
                           f"pool {pool.label()} is the site-wide pool; it cannot also be a source")
        elif any(_pool_keys(pool) & _pool_keys(earlier) for earlier in pools):
            reader.problem(item.line, item_key, f"pool {pool.label()} is listed twice")
        else:
            pools.append(pool)
    return tuple(pools)


def _read_discovery(node: Node, key: str, reader: Reader) -> DiscoveryConfig | None:
    fields = reader.mapping(node, key, ("enabled", "include", "exclude"))
    if fields is None:
        return None
    include = reader.optional(fields, "include", key, reader.strings)
    if include == ():
        reader.problem(fields["include"].line, f"{key}.include",
                       'must list at least one glob; "*" takes every pool')
    return DiscoveryConfig(
        enabled=reader.optional(fields, "enabled", key, reader.boolean) or False,
        include=include or DiscoveryConfig.include,
        exclude=reader.optional(fields, "exclude", key, reader.strings) or (),
    )


def _read_template(node: Node, key: str, reader: Reader) -> str | None:
    template = reader.text(node, key)
    problem = _template_problem(template) if template is not None else None
    if problem:
        reader.problem(node.line, key, problem)
        return None
    return template


def _template_problem(template: str) -> str | None:
    """Why a username template cannot be used, or None if it can."""
    allowed = ", ".join(f"{{{name}}}" for name in TEMPLATE_PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        return f"malformed braces ({error}); write {{{{ or }}}} for a literal brace"
    for _, placeholder, spec, conversion in parts:
        if placeholder is not None and placeholder not in TEMPLATE_PLACEHOLDERS:
            return f"unknown placeholder {{{placeholder}}}; allowed: {allowed}"
        if spec or conversion:
            return f"placeholder {{{placeholder}}} takes no format spec or conversion"
    return None


def _read_removals(node: Node, key: str, reader: Reader) -> str | None:
    removals = reader.text(node, key)
    if removals is not None and removals not in REMOVALS_MODES:
        reader.problem(node.line, key, f"must be flag (ask a person) or delete (delete within max_deletes), "
                                       f"not `{removals}`")
        return None
    return removals


def _read_delete_guard(node: Node, key: str, reader: Reader) -> DeleteGuard | None:
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return DeleteGuard(count=value)
    match = _PERCENT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match and float(match[1]) <= 100:
        return DeleteGuard(percent=float(match[1]))
    reader.problem(node.line, key,
                   'must be a number of passphrases (0 or more) or a percentage from "0%" to "100%"')
    return None


def _check_shared_site_wide_pools(orchestrators: Mapping[str, OrchestratorConfig],
                                  entries: Mapping[str, Node],
                                  controllers: Mapping[str, ControllerConfig | None], reader: Reader) -> None:
    """Two orchestrators never share a site-wide pool: same id, or same name in the same tenant."""
    owners: dict[str, str] = {}
    for name, orchestrator in orchestrators.items():
        keys = _tenant_pool_keys(orchestrator, orchestrator.site_wide_pool, controllers)
        other = next((owners[key] for key in keys if key in owners), None)
        if other is not None:
            reader.problem(entries[name].value["site_wide_pool"].line, f"orchestrators.{name}.site_wide_pool",
                           f"pool {orchestrator.site_wide_pool.label()} is already the site-wide pool of "
                           f"orchestrator `{other}`; two orchestrators cannot share one")
        for key in keys:
            owners.setdefault(key, name)


def _check_sources_not_site_wide(orchestrators: Mapping[str, OrchestratorConfig], entries: Mapping[str, Node],
                                 controllers: Mapping[str, ControllerConfig | None], reader: Reader) -> None:
    """A listed source pool is never the site-wide pool of another orchestrator (its own is checked on reading)."""
    fillers = {key: name for name, orchestrator in orchestrators.items()
               for key in _tenant_pool_keys(orchestrator, orchestrator.site_wide_pool, controllers)}
    for name, orchestrator in orchestrators.items():
        for index, item, pool in _listed_source_pools(entries[name], reader):
            if _pool_keys(pool) & _pool_keys(orchestrator.site_wide_pool):
                continue  # its own site-wide pool: reported when the list was read
            filler = next((fillers[key] for key in _tenant_pool_keys(orchestrator, pool, controllers)
                           if fillers.get(key, name) != name), None)
            if filler is not None:
                reader.problem(item.line, f"orchestrators.{name}.source_pools[{index}]",
                               f"pool {pool.label()} is the site-wide pool of orchestrator `{filler}`; "
                               "it cannot also be a source")


def _listed_source_pools(entry: Node, reader: Reader) -> list[tuple[int, Node, PoolRef]]:
    """The source pools written in the file that read cleanly, with their index and node (read again quietly:
    their problems were reported already)."""
    listed = entry.value.get("source_pools") if isinstance(entry.value, dict) else None
    if listed is None or not isinstance(listed.value, list):
        return []
    quiet = Reader(reader.file, reader.environ)
    pools = [(index, item, _read_pool(item, "", quiet, ("name", "id", "vlan")))
             for index, item in enumerate(listed.value)]
    return [(index, item, pool) for index, item, pool in pools if pool is not None]


def _tenant_pool_keys(orchestrator: OrchestratorConfig, pool: PoolRef,
                      controllers: Mapping[str, ControllerConfig | None]) -> set[str]:
    """What identifies a pool across the file: its id anywhere, its name within the orchestrator's tenant."""
    controller = controllers.get(orchestrator.controller)
    tenant = orchestrator.tenant_id or (controller.tenant_id if controller else orchestrator.controller)
    return {key if key.startswith("id:") else f"{tenant}/{key}" for key in _pool_keys(pool)}


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ["HOME"]) if environ.get("HOME") else Path.home()


def _xdg_home(environ: Mapping[str, str], variable: str, default_under_home: Path) -> Path:
    """An XDG base directory: the variable when it holds an absolute path, else its default under $HOME."""
    value = environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else _home(environ) / default_under_home
