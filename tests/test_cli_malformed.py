"""Malformed command lines, files and environments: one line on stderr, never a traceback.

Every invocation runs in a process of its own (a crash, a hang or a traceback fails that
case, not the run): a child forked per case from one long-lived interpreter that has already
imported hashring (``tests/cli_runs.py``: fds 0/1/2, argv bytes and the environment set up as
``python -m hashring`` would have them), so the table costs one interpreter start-up, not
one per case. The cases of :data:`REAL_PROCESS` also run as genuine ``python -m hashring``
subprocesses, pinning the real boundary (closed and full stdout, argv bytes) and checking
that the forked runs say the same. Each must exit with status 1 or 2, print exactly one
line on stderr, no ``Traceback`` and no ``internal error`` (the last-resort handler that
would hide a bug), finish within the hang bound and, for the refused sizes, well under the
time the work itself would take.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_runs import CliRun, Zygote, run_process

from hashring import MAX_POINTS

HANG_BOUND = 30.0
"""Seconds a malformed invocation may take before it counts as a hang."""
REFUSAL_BOUND = 10.0
"""Seconds a refused size may take, start-up included (the work refused would take hours;
the refusal itself takes well under a second, the rest is a shared CI machine)."""

Arg = str | bytes


@dataclass(frozen=True)
class Case:
    """One malformed invocation and what its single stderr line must contain."""

    args: tuple[Arg, ...]
    status: int
    message: str
    stdout: str = "pipe"  # "pipe", "closed" (>&-) or "full" (>/dev/full)
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = b""  # None: standard input closed (<&-)


def case(
    *args: Arg,
    message: str,
    status: int = 2,
    stdout: str = "pipe",
    env: dict[str, str] | None = None,
    stdin: bytes | None = b"",
) -> Case:
    return Case(tuple(args), status, message, stdout, env or {}, stdin)


# Files made once per module in a temporary directory; "{dir}" in an argument is that directory.
FILES: dict[str, bytes] = {
    "binary.toml": bytes(range(256)) * 8,
    "utf16.toml": '[nodes.a]\nurl = "redis://h/0"\n'.encode("utf-16"),
    "latin1.toml": '[nodes.caf\u00e9]\nurl = "redis://h/0"\n'.encode("latin-1"),
    "deep_array.toml": b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "deep_table.toml": b"a = " + b"{b = " * 100_000 + b"}" * 100_000 + b"\n",
    "long_int.toml": b"[nodes.a]\nweight = 1" + b"0" * 5000 + b"\n",
    "huge_int_weight.toml": b"[nodes.a]\nweight = 1" + b"0" * 400 + b"\n",
    "huge_weight.toml": b"[nodes.a]\nweight = 1e6\n[nodes.b]\n",
    "inf_weight.toml": b"[nodes.a]\nweight = inf\n",
    "huge_vnodes.toml": b"[placement]\nvnodes = 100000000\n[nodes.a]\n",
    "huge_table.toml": b'[placement]\nalgorithm = "maglev"\ntable_size = 2147483647\n[nodes.a]\n',
    "literal_key.toml": b'[placement]\nhash_key = "0123456789abcdef0123"\n[nodes.a]\n',
    "key_env_unset.toml": b'[placement]\nhash_key_env = "HASHRING_TEST_UNSET"\n[nodes.a]\n',
    "key_env_short.toml": b'[placement]\nhash_key_env = "HASHRING_TEST_SHORT"\n[nodes.a]\n',
    "empty_name.toml": b'[nodes.""]\n',
    "no_nodes.toml": b"[placement]\n",
    "empty.toml": b"",
    "nul.toml": b"[nodes.a]\x00\n",
    "bad_url_password.toml": b'[nodes.a]\nurl = "redis://u:s3cr/3t@127.0.0.1:7001/0"\n',
    "control_in_error.toml": b'[nodes."a\\u001b[2Jb"]\nweight = -1\n',
    "keys_empty.txt": b"\n\n",
}
SHORT_SECRET = "too-short"
TABLE_BOUND = "table_size must be a prime number from 2 to"


CASES: dict[str, Case] = {
    # ------------------------------------------------------- found by review (issue 9)
    "stdin_closed_keys_file": case(
        "report", "--nodes", "3", "--keys-file", "-", stdin=None, message="standard input"
    ),
    "nodes_count_with_leading_zeros": case(
        "lookup", "--nodes", "000300000", "k", message="at most 200,000 nodes"
    ),
    "ring_too_big_before_building": case(
        "report", "--nodes", "150000", "--keys", "10", message="points a ring may hold"
    ),
    "password_in_bad_url": case(
        "lookup", "k", "--config", "{dir}/bad_url_password.toml", message="percent-encode"
    ),
    # ---------------------------------------------------------------- topology files
    "binary_toml": case("report", "--from", "{dir}/binary.toml", message="not UTF-8"),
    "utf16_toml": case("report", "--from", "{dir}/utf16.toml", message="UTF-16"),
    "latin1_toml": case("report", "--from", "{dir}/latin1.toml", message="byte 0xe9"),
    "deep_array_toml": case("report", "--from", "{dir}/deep_array.toml", message="too deeply"),
    "deep_table_toml": case("lookup", "k", "--config", "{dir}/deep_table.toml", message="deeply"),
    "long_int_toml": case("report", "--from", "{dir}/long_int.toml", message="4300 digits"),
    "huge_int_weight": case(
        "report", "--from", "{dir}/huge_int_weight.toml", message="positive finite number"
    ),
    "huge_weight_toml": case(
        "report", "--from", "{dir}/huge_weight.toml", message=f"at most {MAX_POINTS:,}"
    ),
    "inf_weight_toml": case("report", "--from", "{dir}/inf_weight.toml", message="finite"),
    "huge_vnodes_toml": case(
        "report", "--from", "{dir}/huge_vnodes.toml", message=f"{MAX_POINTS:,}"
    ),
    "huge_table_toml": case("report", "--from", "{dir}/huge_table.toml", message=TABLE_BOUND),
    "literal_hash_key": case(
        "report", "--from", "{dir}/literal_key.toml", message="use hash_key_env"
    ),
    "hash_key_env_unset": case(
        "report", "--from", "{dir}/key_env_unset.toml", message="HASHRING_TEST_UNSET"
    ),
    "hash_key_env_short": case(
        "report",
        "--from",
        "{dir}/key_env_short.toml",
        message="holds 9 bytes",
        env={"HASHRING_TEST_SHORT": SHORT_SECRET},
    ),
    "empty_node_name": case("report", "--from", "{dir}/empty_name.toml", message="node name"),
    "no_nodes": case("report", "--from", "{dir}/no_nodes.toml", message="no nodes"),
    "empty_file": case("report", "--from", "{dir}/empty.toml", message="no nodes"),
    "nul_in_toml": case("report", "--from", "{dir}/nul.toml", message="not valid TOML"),
    "control_chars_in_error": case(
        "report", "--from", "{dir}/control_in_error.toml", message="a\\x1b[2Jb"
    ),
    "directory_as_toml": case("report", "--from", "{dir}", message="cannot read"),
    "missing_toml": case("report", "--from", "{dir}/missing.toml", message="cannot read"),
    "dev_zero_toml": case("report", "--from", "/dev/zero", message="larger than 64 MiB"),
    "binary_to_toml": case("report", "--to", "{dir}/binary.toml", message="not UTF-8"),
    "migrate_binary_toml": case(
        "migrate", "--from", "{dir}/binary.toml", "--to", "{dir}/binary.toml", message="UTF-8"
    ),
    "non_utf8_path": case("report", "--from", b"\xff.toml", message="\\xff.toml"),
    # ------------------------------------------------------------------- key sources
    "keys_1e12": case("report", "--keys", "1e12", message="at most 1,000,000,000 keys"),
    "keys_above_bound": case("report", "--keys", "1000000001", message="at most 1,000,000,000"),
    "keys_40_digits": case("report", "--keys", "9" * 40, message="too large a number"),
    "keys_negative": case("report", "--keys", "-5", message="at least 1"),
    "keys_nan": case("report", "--keys", "nan", message="not an integer"),
    "keys_inf": case("report", "--keys", "inf", message="not an integer"),
    "keys_fraction": case("report", "--keys", "1.5", message="not an integer"),
    "compare_keys_1e12": case("compare", "--keys", "1e12", message="at most 10,000,000"),
    "sample_1e12": case(
        "report", "--sample-from", "x.toml", "--sample", "1e12", message="at most 10,000,000"
    ),
    "keys_file_dev_zero": case("report", "--keys-file", "/dev/zero", message="longer than 1 MiB"),
    "keys_file_directory": case("report", "--keys-file", "{dir}", message="cannot read"),
    "keys_file_empty": case("report", "--keys-file", "{dir}/keys_empty.txt", message="no keys"),
    "keys_stdin_empty": case("report", "--keys-file", "-", message="no keys"),
    "rendezvous_work": case(
        "report",
        "--algorithm",
        "rendezvous",
        "--nodes",
        "10000",
        "--keys",
        "1000000",
        message="5,000,000,000",
    ),
    # ------------------------------------------------------------- sizes and weights
    "weight_1e6": case("report", "--weight", "node-1=1e6", message=f"at most {MAX_POINTS:,}"),
    "weight_1e308": case("report", "--weight", "node-1=1e308", message="1e+12"),
    "weight_tiny": case("report", "--weight", "node-1=1e-300", message="1e-12"),
    "weight_nan": case("report", "--weight", "node-1=nan", message="positive number"),
    "weight_inf": case("lookup", "k", "--weight", "node-1=inf", message="positive number"),
    "add_huge_weight": case("report", "--add", "x=1e300", message="1e+12"),
    "compare_vnodes_1e8": case("compare", "--vnodes", "1e8", message=f"{MAX_POINTS:,}"),
    "vnodes_zero": case("report", "--vnodes", "0", message="at least 1"),
    "table_size_2_31": case(
        "report", "--algorithm", "maglev", "--table-size", "2147483647", message=TABLE_BOUND
    ),
    "table_size_1e30": case(
        "lookup", "k", "--algorithm", "maglev", "--table-size", "1e30", message=TABLE_BOUND
    ),
    "nodes_count_huge": case("report", "--nodes", "99999999999", message="at most 200,000"),
    "nodes_zero": case("report", "--nodes", "0", message="at least 1"),
    "nodes_commas": case("report", "--nodes", ",,", message="empty node name"),
    "replicas_1e12": case("lookup", "k", "--nodes", "3", "--replicas", "1e12", message="only 3"),
    "maglev_table_too_small": case(
        "report", "--algorithm", "maglev", "--table-size", "7", message="cannot hold 8 nodes"
    ),
    "plot_too_many_nodes": case(
        "report", "--nodes", "1001", "--plot", "{dir}/p.png", message="at most 1000 nodes"
    ),
    # ----------------------------------------------------------------- argv and text
    "non_utf8_node": case("report", "--nodes", b"\xff", message="UTF-8"),
    "non_utf8_add": case("report", "--add", b"a\xff=2", message="UTF-8"),
    "non_utf8_choice": case("report", "--format", b"\xff", message="invalid choice"),
    "newline_in_remove": case("report", "--remove", "x\ny", message="no node 'x\\ny'"),
    "escape_in_remove": case("report", "--remove", "a\x1b[2Jb", message="a\\x1b[2Jb"),
    "no_command": case(message="required: COMMAND"),
    "unknown_command": case("frobnicate", message="invalid choice"),
    "unknown_flag": case("report", "--bogus", message="unrecognized arguments"),
    "missing_value": case("report", "--format", message="expected one argument"),
    "lookup_without_key": case("lookup", message="required: KEY"),
    "jump_with_weights": case(
        "report", "--algorithm", "jump", "--weight", "node-1=2", message="weights"
    ),
    # ------------------------------------------------------------ hash keys from env
    "hash_key_env_flag_unset": case(
        "lookup", "k", "--hash-key-env", "HASHRING_TEST_UNSET", message="is not set"
    ),
    "hash_key_env_flag_short": case(
        "report",
        "--hash-key-env",
        "HASHRING_TEST_SHORT",
        message="16 to 64 bytes",
        env={"HASHRING_TEST_SHORT": SHORT_SECRET},
    ),
    "hash_key_env_flag_long": case(
        "compare",
        "--hash-key-env",
        "HASHRING_TEST_LONG",
        message="holds 65 bytes",
        env={"HASHRING_TEST_LONG": "x" * 65},
    ),
    "hash_key_env_flag_empty": case(
        "lookup", "k", "--hash-key-env", "", message="not an environment variable name"
    ),
    # --------------------------------------------------------------- broken stdout
    "report_stdout_closed": case(
        "report", "--keys", "100", status=1, message="standard output is closed", stdout="closed"
    ),
    "lookup_stdout_closed": case(
        "lookup", "k", status=1, message="standard output is closed", stdout="closed"
    ),
    "help_stdout_closed": case(
        "--help", status=1, message="standard output is closed", stdout="closed"
    ),
    "report_stdout_full": case(
        "report", "--keys", "100", status=1, message="No space left on device", stdout="full"
    ),
    "report_json_stdout_full": case(
        "report",
        "--keys",
        "100",
        "--format",
        "json",
        status=1,
        message="cannot write the output",
        stdout="full",
    ),
    "compare_stdout_full": case(
        "compare", "--keys", "100", status=1, message="cannot write the output", stdout="full"
    ),
    "help_stdout_full": case(
        "report", "--help", status=1, message="cannot write the output", stdout="full"
    ),
}


REAL_PROCESS = ("report_stdout_closed", "report_stdout_full", "non_utf8_path")
"""Cases also run as genuine ``python -m hashring`` subprocesses (the process boundary)."""


@dataclass(frozen=True)
class Outcomes:
    """Every case run in a forked child, and the :data:`REAL_PROCESS` ones as subprocesses."""

    forked: dict[str, CliRun]
    real: dict[str, CliRun]


def clean_environment() -> dict[str, str]:
    """This process's environment without any ``HASHRING_`` variable."""
    return {name: value for name, value in os.environ.items() if not name.startswith("HASHRING_")}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    """Every case of :data:`CASES` run once with the files of :data:`FILES`: forked one at a
    time from one zygote while the real subprocesses of :data:`REAL_PROCESS` run alongside."""
    directory = tmp_path_factory.mktemp("malformed")
    for name, content in FILES.items():
        (directory / name).write_bytes(content)
    with ThreadPoolExecutor(max_workers=len(REAL_PROCESS)) as pool:
        real = {name: pool.submit(run, CASES[name], directory) for name in REAL_PROCESS}
        with Zygote(clean_environment()) as zygote:
            forked = {name: fork(zygote, case, directory) for name, case in CASES.items()}
        return Outcomes(forked, {name: future.result() for name, future in real.items()})


def arguments(case: Case, directory: Path) -> list[Arg]:
    """The case's argv with "{dir}" replaced by ``directory``."""
    return [
        arg.replace("{dir}", str(directory)) if isinstance(arg, str) else arg for arg in case.args
    ]


def fork(zygote: Zygote, case: Case, directory: Path) -> CliRun:
    """Run the case in a child forked from ``zygote`` (killed after :data:`HANG_BOUND`)."""
    return zygote.run(
        *arguments(case, directory),
        stdin=case.stdin,
        stdout=case.stdout,
        env=case.env,
        timeout=HANG_BOUND,
    )


def run(case: Case, directory: Path) -> CliRun:
    """Run the case as a genuine ``python -m hashring`` subprocess."""
    return run_process(
        *arguments(case, directory),
        stdin=case.stdin,
        stdout=case.stdout,
        env={**clean_environment(), **case.env},
        timeout=HANG_BOUND,
    )


def check_outcome(name: str, outcome: CliRun) -> None:
    """Exit status 1 or 2, exactly one stderr line naming the problem, no traceback, fast."""
    case = CASES[name]
    stderr = outcome.stderr
    assert not outcome.hang, f"{name} still ran after {HANG_BOUND:g} s: {stderr}"
    assert outcome.status == case.status, (outcome.status, stderr)
    assert "Traceback" not in stderr
    assert "internal error" not in stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.endswith("\n"), stderr
    assert stderr.startswith("hashring: "), stderr
    assert case.message in stderr, stderr
    assert "\x1b" not in stderr  # control characters are escaped
    assert SHORT_SECRET not in stderr  # a hash key's value is never printed
    assert "s3cr" not in stderr  # nor any piece of a password in a node URL
    assert outcome.seconds < REFUSAL_BOUND, f"{name} took {outcome.seconds:.1f} s"
    assert outcome.stdout == b""


def test_the_table_has_at_least_50_cases() -> None:
    """The issue asks for a table of at least 50 malformed invocations."""
    assert len(CASES) >= 50


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_invocation_is_one_line_and_a_status(name: str, outcomes: Outcomes) -> None:
    """Exit status 1 or 2, exactly one stderr line naming the problem, no traceback, fast."""
    check_outcome(name, outcomes.forked[name])


@pytest.mark.parametrize("name", REAL_PROCESS)
def test_a_real_process_says_the_same(name: str, outcomes: Outcomes) -> None:
    """As a genuine `python -m hashring` process the case passes too, with the forked run's
    exit status and stderr line (the forked runs reproduce the process boundary)."""
    real, forked = outcomes.real[name], outcomes.forked[name]
    check_outcome(name, real)
    assert (real.status, real.stderr) == (forked.status, forked.stderr)
