"""The repository stands alone: no tracked file cites a document or a path that only exists on a developer's machine.

Comments and docstrings cite the Matter spec (Core spec x.y.z), an RFC, or an upstream source as repository + path
(+ commit), e.g. "connectedhomeip src/app/server/JointFabricDatastore.cpp" or "matter.js packages/node/src/...";
a maintainer who clones the repository can follow those. Notes kept next to a checkout (the reference folder of
the machine this was written on, its vector notes, absolute paths of that machine) cannot be followed, so this
test fails on any tracked file that names them and lists every offending line. Likewise a path into this
repository that a tracked file names (``tests/...``, ``jfds_device/...``) must be a tracked file.

Two sibling folders are legitimate runtime inputs, not citations, and stay allowed: ``../shared/attestation`` (the
CSA test PAA and CD-signing material, which must not be committed) and ``../shared/certtests`` (the CHIP SDK cert
harness the tests and CI use).

The patterns are written so that this file does not match them itself (``[.]`` for a dot, ``[/]`` for a slash).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# The reference notes that used to be cited, by name (with or without their folder).
_NOTE_NAMES = (
    r"architecture[.]md",
    r"chip_controller[.]md",
    r"jfds_cluster[.]md",
    r"jfds_cert[_]tests",
    r"reference[_]semantics",
    r"matterjs[.]md",
    r"node_manager[_]design",
    r"python_stack[_]notes",
    r"chip_jfds[_]objects",
    r"matterjs_jfds[_]model",
)
# The vector notes (one file per topic); a repository file such as certs/README.md does not match.
_VECTOR_NOTES = (
    r"(?<![\w/.-])(?:aes_ccm|case|certs|compressed_fabric_id|group_keys|hkdf|message_header|onboarding|pase|spake2p"
    r"|tlv)[.]md\b"
)

RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("absolute path of a developer machine", re.compile(r"(?<![\w.])[/]work[/]")),
    ("the shared reference folder", re.compile(r"shared[/\\]+reference", re.IGNORECASE)),
    (
        "a sibling folder other than shared/attestation or shared/certtests",
        re.compile(r"\.\.[/]shared[/](?!attestation\b|certtests\b)"),
    ),
    (  # the same, spelled as quoted path parts joined by pathlib's / or by os.path.join
        "a sibling folder other than shared/attestation or shared/certtests",
        re.compile(r"""["']shared["']\s*[/,]\s*["'](?!(?:attestation|certtests)["'])"""),
    ),
    ("a reference note by name", re.compile("|".join(_NOTE_NAMES), re.IGNORECASE)),
    ("a vector note by name", re.compile(_VECTOR_NOTES + r"|vectors[/][\w*]+[.]md", re.IGNORECASE)),
    ("a section of the architecture note", re.compile(r"\barchitecture (?:§|rule\b)", re.IGNORECASE)),
)


def offences(text: str) -> list[tuple[int, str, str]]:
    """(line number, rule, line) for every line of ``text`` that cites something outside the repository."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for rule, pattern in RULES:
            if pattern.search(line):
                found.append((number, rule, line.strip()))
                break
    return found


# A path into this repository that a comment or document names must exist, or a maintainer cannot follow it
# either. A path right after an upstream repository's name is that repository's ("CircuitMatter tests/...").
_REPO_PATH = re.compile(
    r"(?<![\w./-])((?:jfds_device|clusters|tests|certs|bench|\.ci)/[\w./-]*\w[.](?:py|md|mjs|json|sh|toml|pem|der|txt))\b"
)
_UPSTREAM_NAME = re.compile(
    r"connectedhomeip|matter[.-]js|CircuitMatter|rs-matter|aioquic|\bh11\b|project-chip|python-matter-server"
    r"|home-assistant",
    re.IGNORECASE,
)


def dangling_paths(text: str, tracked: set[str]) -> list[tuple[int, str]]:
    """(line number, path) for every repository path ``text`` names that is not a tracked file."""
    found = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        for match in _REPO_PATH.finditer(line):
            before = ((lines[index - 1] if index else "") + " " + line[: match.start()])[-60:]
            if match.group(1) not in tracked and not _UPSTREAM_NAME.search(before):
                found.append((index + 1, match.group(1)))
    return found


def _tracked_files() -> list[Path]:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: cannot list the tracked files")
    result = subprocess.run([git, "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, check=False, timeout=60)
    if result.returncode != 0:
        pytest.skip(f"not a git checkout ({result.stderr.decode(errors='replace').strip()})")
    return [REPO_ROOT / name for name in result.stdout.decode().split("\0") if name]


def test_no_tracked_file_cites_anything_outside_the_repository() -> None:
    files = _tracked_files()
    assert files, "git ls-files listed nothing"
    report = []
    for path in files:
        if path.is_symlink() or not path.is_file():
            continue  # a symlink points elsewhere by design (e.g. tests/matterjs/node_modules, untracked anyway)
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary (DER certificates and the like)
        for number, rule, line in offences(data.decode("utf-8", errors="replace")):
            report.append(f"{path.relative_to(REPO_ROOT)}:{number}: {rule}: {line[:160]}")
    assert not report, "citations of things outside the repository:\n" + "\n".join(report)


def test_every_repository_path_named_in_a_tracked_file_exists() -> None:
    files = _tracked_files()
    tracked = {path.relative_to(REPO_ROOT).as_posix() for path in files}
    report = []
    for path in files:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        for number, named in dangling_paths(data.decode("utf-8", errors="replace"), tracked):
            report.append(f"{path.relative_to(REPO_ROOT)}:{number}: {named} is not a file of the repository")
    assert not report, "paths that lead nowhere:\n" + "\n".join(report)


# --- The rules themselves: each forbidden form is caught, the allowed ones are not. ----------------------------
# The forbidden samples are assembled from pieces so that this file does not contain them.

_FORBIDDEN = [
    "# Vectors: " + "/wo" + "rk/shared/" + "reference/vectors/" + "pase" + ".md",
    "see " + "shared/" + "reference/README" + ".md",
    "(" + "node_manager" + "_design" + '.md "Executor")',
    "(" + "matterjs" + ".md §5)",
    "(" + "jfds_reference" + "_semantics" + ".md §3)",
    "(" + "jfds_cert" + "_tests" + ".md)",
    "(" + "chip_controller" + ".md §5)",
    "(" + "jfds_cluster" + ".md §6)",
    "(" + "python_stack" + "_notes" + ".md §5)",
    "Driven the aioquic way (" + "architecture" + ".md §2)",
    "(" + "architecture" + " §6)",
    "(" + "architecture" + " rule 4)",
    "# " + "certs" + '.md "NOC with 21-octet serial"',
    "# --- " + "case" + '.md "Sigma2 construction"',
    "(vectors/" + "aes_ccm" + ".md)",
    "Vectors are copied from vectors/" + "*" + ".md",
    "dumped to " + "chip_jfds" + "_objects.txt",
    "SHARED = REPO_ROOT.parent / 'x'; '../" + "shared/" + "notes/a.txt'",
    "VECTORS = REPO_ROOT.parent / " + '"shared"' + ' / "refer' + 'ence" / "vectors"',
    "os.path.join(root, '..', " + "'shared'" + ", 'refer" + "ence')",
]
_ALLOWED = [
    "python certs/make_attestation.py [--shared ../shared/attestation] [--out certs]",
    "openssl x509 -in ../shared/attestation/Chip-Test-PAA-NoVID-Cert.pem -outform der",
    "HARNESS = REPO_ROOT.parent / 'shared' / 'certtests'  # ../shared/certtests/run.py",
    'SHARED = REPO_ROOT.parent / "shared" / "attestation"',
    "os.path.join(root, '..', 'shared', 'certtests')",
    "See certs/README.md and the README's Architecture table (README, Architecture).",
    "connectedhomeip src/messaging/README.md; scripts/tools/spake2p/README.md @ aee7f7842dbd",
    "matter.js packages/protocol/test/session/secure/CasePairingTest.ts @ b851ce019504",
    "The CHIP controller wheel hard-codes /data/chip_*.ini (connectedhomeip #24153).",
    "fields[0][2] = b'0' * 32  # TC_JFDS_2_2.py sends 32-byte keys",
]


@pytest.mark.parametrize("line", _FORBIDDEN)
def test_a_citation_outside_the_repository_is_caught(line: str) -> None:
    assert offences(line), line


@pytest.mark.parametrize("line", _ALLOWED)
def test_upstream_citations_and_runtime_inputs_are_allowed(line: str) -> None:
    assert offences(line) == []


def test_a_repository_path_must_exist_unless_it_is_an_upstream_one() -> None:
    tracked = {"tests/crypto/test_certs.py", "jfds_device/transport/wire.py"}
    gone, nowhere = "tests/crypto/test_" + "gone.py", "clusters/nowhere/" + "schema.py"  # split: not paths here
    text = "\n".join(
        [
            "# the vectors in tests/crypto/test_certs.py and jfds_device/transport/wire.py",  # both exist
            f"# see {gone} and {nowhere}.",  # neither does
            "# CircuitMatter tests/test_setup_codes.py @ 14140f75530c",  # upstream: not ours to check
            "# (connectedhomeip",
            "# tests/upstream_only.py)",  # the repository name is on the line before
            "# f'tests/{name}.py' and tests/ alone are not paths",
        ]
    )
    assert dangling_paths(text, tracked) == [(2, gone), (2, nowhere)]


def test_the_report_names_the_line_and_the_rule() -> None:
    text = "ok\n# from " + "/wo" + "rk/main/x.py\nok"
    assert offences(text) == [(2, "absolute path of a developer machine", "# from " + "/wo" + "rk/main/x.py")]
