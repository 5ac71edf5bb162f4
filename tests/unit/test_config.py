"""The config file: ${VAR} and *_file secrets, every problem at once as `file:line: key: problem`, and
`config validate` through the real CLI, which calls nothing."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dpsk_orch.cli import app
from dpsk_orch.config import ConfigError, DeleteGuard, PoolRef, load_config, render_username

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "orchestrators.yaml.example"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
SECRET = "client-secret-canary-91c4"

VALID = """\
version: 1
controllers:
  r1:
    region: na
    tenant_id: 5a3f0c1e
    client_id: ${R1_CLIENT_ID}
    client_secret_file: r1.secret
orchestrators:
  parkview:
    controller: r1
    venue_id: 1c2d3e4f
    site_wide_pool: SiteWideDPSK
    source_pools: [Unit101DPSK, {id: 4b76b195, vlan: 102}]
"""

# Line numbers matter: the test below checks every problem of this file by line and key path.
EVERYTHING_WRONG = """\
version: 1
controllers:
  r1:
    region: na
    tenant_id: 5a3f0c1e
    client_id: ${NOT_SET_ID}
    client_secret: ${R1_CLIENT_SECRET}
    concurrency: lots
    colour: blue
orchestrators:
  parkview:
    controller: r1
    site_wide_pool: SiteWideDPSK
    source_pools: [Unit101DPSK, sitewidedpsk, {vlan: 103}]
    discovery: {enabled: true}
    username_template: "{username} in {unit}"
    removals: purge
    max_deletes: "120%"
  elmstreet:
    controller: r1
    site_wide_pool: SiteWideDPSK
    source_pools: [Unit201DPSK]
  oakridge:
    controller: r9
    site_wide_pool: OakSiteWide
    source_pools: [Unit301DPSK]
"""
EVERYTHING_WRONG_PROBLEMS = [  # (line, key path, part of the problem)
    (6, "controllers.r1.client_id", "environment variable NOT_SET_ID is not set"),
    (8, "controllers.r1.concurrency", "must be an integer"),
    (9, "controllers.r1.colour", "unknown key"),
    (14, "orchestrators.parkview.source_pools[1]", "is the site-wide pool; it cannot also be a source"),
    (14, "orchestrators.parkview.source_pools[2]", "give exactly one of `name` or `id`"),
    (15, "orchestrators.parkview.discovery.enabled", "discovery needs venue_id"),
    (16, "orchestrators.parkview.username_template", "unknown placeholder {unit}"),
    (17, "orchestrators.parkview.removals", "must be flag"),
    (18, "orchestrators.parkview.max_deletes", "percentage"),
    (21, "orchestrators.elmstreet.site_wide_pool", "two orchestrators cannot share one"),
    (24, "orchestrators.oakridge.controller", "controller `r9` is not defined"),
]

# The four problems `config validate` must name through the CLI: unknown key, type error, unset
# variable, and a pool reference that names no pool.
FOUR_PROBLEMS = """\
version: 1
controllers:
  r1:
    region: na
    tenant_id: 5a3f0c1e
    client_id: ${NOT_SET_ID}
    client_secret: ${R1_CLIENT_SECRET}
    max_requests_per_minute: fast
orchestrators:
  parkview:
    controller: r1
    site_wide_pool: SiteWideDPSK
    source_pools: [Unit101DPSK, {vlan: 102}]
    removal: delete
"""
FOUR_PROBLEMS_EXPECTED = [
    (6, "controllers.r1.client_id", "NOT_SET_ID"),
    (8, "controllers.r1.max_requests_per_minute", "must be an integer"),
    (13, "orchestrators.parkview.source_pools[1]", "give exactly one of `name` or `id`"),
    (14, "orchestrators.parkview.removal", "unknown key (did you mean `removals`?)"),
]


def write_config(directory: Path, text: str, mode: int = 0o600, name: str = "orchestrators.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    path.chmod(mode)
    return path


def write_secret(directory: Path, name: str = "r1.secret", value: str = SECRET) -> Path:
    path = directory / name
    path.write_text(f"{value}\n")
    path.chmod(0o600)
    return path


def problems_of(path: Path, environ: dict[str, str]) -> list:
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ)
    return raised.value.problems


def located(problems: list) -> list[tuple[int | None, str]]:
    return [(problem.line, problem.key) for problem in problems]


def with_orchestrator(lines: str) -> str:
    """VALID with its orchestrator's last line replaced by `lines` (indented like its keys)."""
    return VALID.replace("    source_pools: [Unit101DPSK, {id: 4b76b195, vlan: 102}]\n", lines)


# ---- values from the environment and from files -----------------------------------------------

def test_variables_and_secret_file_fill_in_the_controller(tmp_path):
    write_secret(tmp_path)
    config = load_config(write_config(tmp_path, VALID), {"R1_CLIENT_ID": "client-from-env"})
    controller = config.controllers["r1"]
    assert controller.client_id == "client-from-env"
    assert controller.client_secret == SECRET  # read from the file next to the config, newline stripped
    assert controller.api_url == "https://api.ruckus.cloud"
    assert SECRET not in repr(config)
    orchestrator = config.orchestrators["parkview"]
    assert orchestrator.source_pools == (PoolRef(name="Unit101DPSK"), PoolRef(id="4b76b195", vlan=102))


def test_secret_file_under_credentials_directory(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write_secret(credentials, "r1-main.secret")
    text = VALID.replace("client_secret_file: r1.secret", "client_secret_file: ${CREDENTIALS_DIRECTORY}/r1-main.secret")
    config = load_config(write_config(tmp_path, text),
                         {"R1_CLIENT_ID": "c", "CREDENTIALS_DIRECTORY": str(credentials)})
    assert config.controllers["r1"].client_secret == SECRET


def test_variable_inside_text_and_escaped_dollar(tmp_path):
    text = VALID.replace("region: na", "api_url: https://${PROXY_HOST}/r1") \
                .replace("site_wide_pool: SiteWideDPSK", "site_wide_pool: Site$${Wide}")
    write_secret(tmp_path)
    config = load_config(write_config(tmp_path, text), {"R1_CLIENT_ID": "c", "PROXY_HOST": "proxy.example.net"})
    assert config.controllers["r1"].api_url == "https://proxy.example.net/r1"
    assert config.orchestrators["parkview"].site_wide_pool == PoolRef(name="Site${Wide}")


def test_unset_credentials_directory_says_systemd_sets_it(tmp_path):
    text = VALID.replace("client_secret_file: r1.secret", "client_secret_file: ${CREDENTIALS_DIRECTORY}/r1.secret")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(7, "controllers.r1.client_secret_file")]
    assert "CREDENTIALS_DIRECTORY is not set" in problems[0].message
    assert "LoadCredential" in problems[0].message


@pytest.mark.parametrize("content, reason", [(None, "does not exist"), ("  \n", "is empty")])
def test_unusable_secret_file_is_named_by_path(tmp_path, content, reason):
    if content is not None:
        (tmp_path / "r1.secret").write_text(content)
    problems = problems_of(write_config(tmp_path, VALID), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(7, "controllers.r1.client_secret_file")]
    assert f"{tmp_path / 'r1.secret'} {reason}" in problems[0].message


# ---- every problem at once ------------------------------------------------------------------

def test_every_problem_is_reported_together_with_file_line_and_key(tmp_path):
    path = write_config(tmp_path, EVERYTHING_WRONG)
    problems = problems_of(path, {"R1_CLIENT_SECRET": SECRET})
    assert located(problems) == [(line, key) for line, key, _ in EVERYTHING_WRONG_PROBLEMS]
    for problem, (line, key, text) in zip(problems, EVERYTHING_WRONG_PROBLEMS, strict=True):
        assert str(problem).startswith(f"{path}:{line}: {key}: ")
        assert text in problem.message
    assert all(SECRET not in str(problem) for problem in problems)


def test_unknown_key_suggests_the_known_one(tmp_path):
    write_secret(tmp_path)
    text = with_orchestrator("    source_pools: [Unit101DPSK]\n    usernme_template: '{username}'\n")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(14, "orchestrators.parkview.usernme_template")]
    assert "did you mean `username_template`?" in problems[0].message


def test_a_misspelt_required_key_is_one_problem_not_two(tmp_path):
    write_secret(tmp_path)
    text = VALID.replace("    site_wide_pool: SiteWideDPSK", "    site_wide_pol: SiteWideDPSK")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(12, "orchestrators.parkview.site_wide_pol")]
    assert "did you mean `site_wide_pool`?" in problems[0].message


@pytest.mark.parametrize("line, key", [
    ("    enabled: 'yes'\n", "orchestrators.parkview.enabled"),
    ("    source_pools: Unit101DPSK\n", "orchestrators.parkview.source_pools"),
    ("    source_pools: [{name: Unit101DPSK, vlan: 5000}]\n", "orchestrators.parkview.source_pools[0].vlan"),
    ("    source_pools: [Unit101DPSK]\n    discovery: {enabled: true, include: []}\n",
     "orchestrators.parkview.discovery.include"),
])
def test_wrong_types_and_ranges_are_refused(tmp_path, line, key):
    write_secret(tmp_path)
    text = with_orchestrator(line if line.startswith("    source") else "    source_pools: [Unit101DPSK]\n" + line)
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert [problem.key for problem in problems] == [key]


def test_undefined_controller_is_a_dangling_reference(tmp_path):
    write_secret(tmp_path)
    text = with_orchestrator("    source_pools: [Unit101DPSK]\n").replace("controller: r1", "controller: r-main")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(10, "orchestrators.parkview.controller")]
    assert "controller `r-main` is not defined under controllers (defined: r1)" in problems[0].message


@pytest.mark.parametrize("pools, key", [
    ("[{vlan: 102}]", "orchestrators.parkview.source_pools[0]"),
    ("[{name: Unit101DPSK, id: 4b76b195}]", "orchestrators.parkview.source_pools[0]"),
])
def test_pool_reference_must_name_exactly_one_pool(tmp_path, pools, key):
    write_secret(tmp_path)
    problems = problems_of(write_config(tmp_path, with_orchestrator(f"    source_pools: {pools}\n")),
                           {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(13, key)]


@pytest.mark.parametrize("source", ["SITEWIDEDPSK", "{name: sitewidedpsk, vlan: 7}"])
def test_site_wide_pool_cannot_also_be_a_source(tmp_path, source):
    write_secret(tmp_path)
    text = with_orchestrator(f"    source_pools: [Unit101DPSK, {source}]\n")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(13, "orchestrators.parkview.source_pools[1]")]


def test_site_wide_pool_by_id_cannot_also_be_a_source(tmp_path):
    write_secret(tmp_path)
    text = with_orchestrator("    source_pools: [Unit101DPSK, {id: 8E7D6C5B}]\n") \
        .replace("site_wide_pool: SiteWideDPSK", "site_wide_pool: {id: 8e7d6c5b}")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(13, "orchestrators.parkview.source_pools[1]")]


def two_orchestrators(second_site_wide: str, second_tenant: str = "", second_sources: str = "[Unit201DPSK]") -> str:
    tenant_line = f"    tenant_id: {second_tenant}\n" if second_tenant else ""
    return with_orchestrator("    source_pools: [Unit101DPSK]\n") + (
        "  elmstreet:\n"
        "    controller: r1\n"
        f"{tenant_line}"
        f"    site_wide_pool: {second_site_wide}\n"
        f"    source_pools: {second_sources}\n")


@pytest.mark.parametrize("second", ["sitewidedpsk", "{name: SiteWideDPSK}"])
def test_two_orchestrators_cannot_share_a_site_wide_pool(tmp_path, second):
    write_secret(tmp_path)
    problems = problems_of(write_config(tmp_path, two_orchestrators(second)), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(16, "orchestrators.elmstreet.site_wide_pool")]
    assert "already the site-wide pool of orchestrator `parkview`" in problems[0].message


def test_same_pool_name_in_two_customer_tenants_is_two_pools(tmp_path):
    write_secret(tmp_path)
    text = two_orchestrators("SiteWideDPSK", second_tenant="9b1e4f0a")
    config = load_config(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert sorted(config.orchestrators) == ["elmstreet", "parkview"]


def test_one_orchestrators_site_wide_pool_cannot_be_anothers_source(tmp_path):
    write_secret(tmp_path)
    text = two_orchestrators("ElmSiteWide", second_sources="[Unit201DPSK, SiteWideDPSK]")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(17, "orchestrators.elmstreet.source_pools[1]")]
    assert "site-wide pool of orchestrator `parkview`" in problems[0].message


def test_discovery_without_venue_id_is_refused(tmp_path):
    write_secret(tmp_path)
    text = with_orchestrator("    discovery:\n      enabled: true\n").replace("    venue_id: 1c2d3e4f\n", "")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(13, "orchestrators.parkview.discovery.enabled")]


def test_no_source_pools_and_no_discovery_is_refused(tmp_path):
    write_secret(tmp_path)
    problems = problems_of(write_config(tmp_path, with_orchestrator("    discovery: {enabled: false}\n")),
                           {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(9, "orchestrators.parkview")]


@pytest.mark.parametrize("removals", ["purge", "Delete", "true", "''"])
def test_bad_removals_are_refused(tmp_path, removals):
    write_secret(tmp_path)
    text = with_orchestrator(f"    source_pools: [Unit101DPSK]\n    removals: {removals}\n")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(14, "orchestrators.parkview.removals")]


@pytest.mark.parametrize("max_deletes", ["-1", '"120%"', '"-5%"', "2.5", "true", '"ten"', '"10"'])
def test_bad_max_deletes_are_refused(tmp_path, max_deletes):
    write_secret(tmp_path)
    text = with_orchestrator(f"    source_pools: [Unit101DPSK]\n    max_deletes: {max_deletes}\n")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(14, "orchestrators.parkview.max_deletes")]


@pytest.mark.parametrize("max_deletes, managed, allowed", [
    ("0", 50, 0), ("25", 1000, 25), ('"5%"', 200, 10), ('"5%"', 39, 1), ('"100%"', 7, 7), ('"0.5 %"', 1000, 5),
])
def test_max_deletes_as_count_or_percent_limits_deletes(tmp_path, max_deletes, managed, allowed):
    write_secret(tmp_path)
    text = with_orchestrator(f"    source_pools: [Unit101DPSK]\n    removals: delete\n    max_deletes: {max_deletes}\n")
    orchestrator = load_config(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"}).orchestrators["parkview"]
    assert orchestrator.removals == "delete"
    assert orchestrator.max_deletes.limit(managed) == allowed


def test_defaults_are_flag_and_ten_deletes(tmp_path):
    write_secret(tmp_path)
    orchestrator = load_config(write_config(tmp_path, VALID), {"R1_CLIENT_ID": "c"}).orchestrators["parkview"]
    assert (orchestrator.removals, orchestrator.max_deletes, orchestrator.enabled) == ("flag", DeleteGuard(count=10),
                                                                                      True)


@pytest.mark.parametrize("template", ["{user}", "{username} {unit}", "{0}", "{}", "{username.upper}",
                                      "{username!r}", "{vlan:04d}", "{username"])
def test_username_template_with_unknown_placeholders_is_refused(tmp_path, template):
    write_secret(tmp_path)
    text = with_orchestrator(f"    source_pools: [Unit101DPSK]\n    username_template: '{template}'\n")
    problems = problems_of(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(14, "orchestrators.parkview.username_template")]


def test_username_template_with_allowed_placeholders_renders(tmp_path):
    write_secret(tmp_path)
    template = "{username} ({pool_name}, VLAN {vlan}) {{x}}"
    text = with_orchestrator(f"    source_pools: [Unit101DPSK]\n    username_template: '{template}'\n")
    orchestrator = load_config(write_config(tmp_path, text), {"R1_CLIENT_ID": "c"}).orchestrators["parkview"]
    assert render_username(orchestrator.username_template, "alice", "Unit101DPSK", 101) == \
        "alice (Unit101DPSK, VLAN 101) {x}"


# ---- a literal secret in the file ---------------------------------------------------------

LITERAL_SECRET = VALID.replace("client_secret_file: r1.secret", f"client_secret: {SECRET}")


def test_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    write_secret(tmp_path).chmod(0o644)
    path = write_config(tmp_path, VALID)

    [problem] = problems_of(path, {"R1_CLIENT_ID": "c"})

    assert "client_secret_file" in problem.key and "chmod 600" in problem.message
    assert SECRET not in problem.message


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_literal_secret_in_a_file_others_can_read_is_refused(tmp_path, mode):
    path = write_config(tmp_path, LITERAL_SECRET, mode)
    problems = problems_of(path, {"R1_CLIENT_ID": "c"})
    assert located(problems) == [(7, "controllers.r1.client_secret")]
    assert f"chmod 600 {path}" in problems[0].message
    assert SECRET not in str(problems[0])


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_literal_secret_in_a_private_file_is_accepted(tmp_path, mode):
    config = load_config(write_config(tmp_path, LITERAL_SECRET, mode), {"R1_CLIENT_ID": "c"})
    assert config.controllers["r1"].client_secret == SECRET


def test_secret_from_a_variable_in_a_readable_file_is_accepted(tmp_path):
    text = VALID.replace("client_secret_file: r1.secret", "client_secret: ${R1_CLIENT_SECRET}")
    config = load_config(write_config(tmp_path, text, 0o644), {"R1_CLIENT_ID": "c", "R1_CLIENT_SECRET": SECRET})
    assert config.controllers["r1"].client_secret == SECRET


def test_secret_that_mixes_a_variable_and_literal_text_counts_as_literal(tmp_path):
    text = VALID.replace("client_secret_file: r1.secret", "client_secret: ${R1_CLIENT_SECRET}-suffix")
    problems = problems_of(write_config(tmp_path, text, 0o644), {"R1_CLIENT_ID": "c", "R1_CLIENT_SECRET": "x"})
    assert located(problems) == [(7, "controllers.r1.client_secret")]


# ---- `dpsk-orch config validate` through the real CLI -------------------------------------

@pytest.fixture
def no_network(monkeypatch) -> list[object]:
    """Every attempt to open a connection is refused and recorded."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network use in a test that must call nothing")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.fixture
def clean_env(monkeypatch) -> pytest.MonkeyPatch:
    """No DPSK_ORCH_* or credential variables from the developer's shell."""
    for name in ("DPSK_ORCH_CONFIG", "DPSK_ORCH_DB", "DPSK_ORCH_JSON", "DPSK_ORCH_QUIET", "CREDENTIALS_DIRECTORY",
                 "R1_CLIENT_ID", "R1_CLIENT_SECRET", "R1_MSP_CLIENT_ID", "NOT_SET_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return monkeypatch


def provide_variables(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set every ${VAR} the file uses; CREDENTIALS_DIRECTORY holds each secret file it names (mode 0600)."""
    text = config.read_text()
    credentials = tmp_path / "credentials"
    credentials.mkdir(exist_ok=True)
    for name in set(re.findall(r"\$\{(\w+)\}", text)):
        monkeypatch.setenv(name, str(credentials) if name == "CREDENTIALS_DIRECTORY" else f"value-of-{name}")
    for secret_name in re.findall(r"^\s*client_secret_file:\s*\$\{CREDENTIALS_DIRECTORY\}/(\S+)", text, re.M):
        write_secret(credentials, secret_name)


def validate(*args: str):
    return CliRunner().invoke(app, [*args], catch_exceptions=False)


def test_validate_accepts_the_reference_example(tmp_path, clean_env, no_network):
    provide_variables(EXAMPLE_CONFIG, tmp_path, clean_env)
    result = validate("-c", str(EXAMPLE_CONFIG), "config", "validate")
    assert result.exit_code == 0, result.stderr
    assert "parkview" in result.stdout
    assert no_network == []


def test_validate_json_of_the_reference_example(tmp_path, clean_env, no_network):
    provide_variables(EXAMPLE_CONFIG, tmp_path, clean_env)
    result = validate("-c", str(EXAMPLE_CONFIG), "--json", "config", "validate")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["valid"] is True
    assert answer["orchestrators"] == ["parkview"]
    assert answer["controllers"] == ["r1-main"]
    assert no_network == []


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_validate_accepts_every_shipped_example(tmp_path, clean_env, no_network, example):
    provide_variables(example, tmp_path, clean_env)
    result = validate("-c", str(example), "config", "validate")
    assert result.exit_code == 0, result.stderr
    assert no_network == []


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_validate_without_the_variables_names_each_one(clean_env, no_network):
    result = validate("-c", str(EXAMPLE_CONFIG), "config", "validate")
    assert result.exit_code == 2
    client_id_line = line_of(EXAMPLE_CONFIG, "client_id: ${R1_CLIENT_ID}")
    secret_file_line = line_of(EXAMPLE_CONFIG, "client_secret_file: ${CREDENTIALS_DIRECTORY}")
    assert f"{EXAMPLE_CONFIG}:{client_id_line}: controllers.r1-main.client_id: environment variable R1_CLIENT_ID" \
        in result.stderr
    assert f"{EXAMPLE_CONFIG}:{secret_file_line}: controllers.r1-main.client_secret_file: environment variable " \
           "CREDENTIALS_DIRECTORY" in result.stderr
    assert no_network == []


def test_validate_names_all_four_problems_with_lines_and_exits_2(tmp_path, clean_env, no_network):
    clean_env.setenv("R1_CLIENT_SECRET", SECRET)
    path = write_config(tmp_path, FOUR_PROBLEMS, 0o644)
    result = validate("-c", str(path), "config", "validate")
    assert result.exit_code == 2
    output = result.stdout + result.stderr
    for line, key, text in FOUR_PROBLEMS_EXPECTED:
        assert f"{path}:{line}: {key}: " in output
        assert text in output
    assert SECRET not in output
    assert no_network == []


def test_validate_json_lists_all_four_problems(tmp_path, clean_env, no_network):
    clean_env.setenv("R1_CLIENT_SECRET", SECRET)
    path = write_config(tmp_path, FOUR_PROBLEMS, 0o644)
    result = validate("-c", str(path), "config", "validate", "--json")
    assert result.exit_code == 2
    answer = json.loads(result.stdout)
    assert answer["valid"] is False
    assert [(p["file"], p["line"], p["key"]) for p in answer["problems"]] == \
        [(str(path), line, key) for line, key, _ in FOUR_PROBLEMS_EXPECTED]
    assert no_network == []


def test_validate_refuses_a_missing_explicit_file(tmp_path, clean_env, no_network):
    result = validate("-c", str(tmp_path / "nope.yaml"), "config", "validate")
    assert result.exit_code == 2
    assert "config file not found" in result.stderr
