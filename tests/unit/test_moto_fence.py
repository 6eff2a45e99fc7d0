"""The emulator's changes to moto are fenced (patches.py): pinned, listed, checked, undoable."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loanstack import template
from loanstack.emulator import fence, patches, private_reads

SRC = template.ROOT / "src" / "loanstack"


def pinned(constraints: Path, package: str) -> str:
    [line] = [
        ln for ln in constraints.read_text().splitlines() if ln.lower().startswith(f"{package}==")
    ]
    return line.split("==", 1)[1].strip()


def test_moto_is_pinned_exactly_and_installed_at_the_pin() -> None:
    version = pinned(template.ROOT / "constraints.txt", "moto")
    pyproject = (template.ROOT / "pyproject.toml").read_text()
    assert f'"moto[server]=={version}"' in pyproject
    assert importlib.metadata.version("moto") == version


def test_the_emulator_account_is_motos_default_account() -> None:
    from moto.core import DEFAULT_ACCOUNT_ID

    from loanstack.emulator import ACCOUNT_ID

    assert ACCOUNT_ID == DEFAULT_ACCOUNT_ID == template.Context().account_id


def test_the_makefile_installs_every_environment_from_its_constraints() -> None:
    makefile = (template.ROOT / "Makefile").read_text()
    installs = [ln for ln in makefile.splitlines() if "pip install" in ln]
    assert len(installs) == 4
    for line in installs:
        assert re.search(r"-c constraints(-checkov)?\.txt", line), line


@pytest.mark.parametrize("patch", patches.PATCHES, ids=lambda p: p.target)
def test_each_patched_moto_target_still_has_the_signature_we_expect(patch: fence.Patch) -> None:
    """A moto upgrade that moves, removes or reshapes a target fails here, by name."""
    found = fence.moto_attribute(patch.owner, patch.name)
    if patch.signature is None:
        assert found is fence.MISSING or fence.signature(found) is None, (
            f"moto now has {patch.target}: read it before replacing it"
        )
    else:
        assert found is not fence.MISSING, f"moto no longer has {patch.target}"
        assert fence.signature(found) == patch.signature


def test_each_patch_says_why() -> None:
    targets = [(id(p.owner), p.name) for p in patches.PATCHES]
    assert len(set(targets)) == len(targets), "a target is patched twice"
    assert all(len(p.why) > 20 for p in patches.PATCHES)


def test_only_patches_py_changes_moto() -> None:
    """Every assignment to an attribute of a moto object is in patches.PATCHES, applied by
    fence.py: no other module of the emulator sets a class attribute or a URL-map entry."""
    for path in sorted((SRC / "emulator").glob("*.py")):
        if path.name in ("patches.py", "fence.py"):
            continue
        text = path.read_text()
        assert "method-assign" not in text, path.name
        assert "url_paths[" not in text, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    assert not (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id[0].isupper()
                    ), f"{path.name}:{node.lineno} sets a class attribute"


PLAIN_MOTO = """
    import boto3, json
    from moto import mock_aws
    from moto.cloudformation import parsing

    import loanstack.emulator as emulator
    from loanstack.emulator import fence, patches

    def deploy_bucket():
        with mock_aws():
            cfn = boto3.client("cloudformation", region_name="us-east-1")
            body = {"Resources": {"B": {"Type": "AWS::S3::Bucket",
                                        "Properties": {"BucketName": "plain-moto"}}}}
            cfn.create_stack(StackName="plain", TemplateBody=json.dumps(body))
            return cfn.describe_stacks(StackName="plain")["Stacks"][0]["StackStatus"]

    def moto_state():
        return {p.target: fence.own(p.owner, p.name) for p in patches.PATCHES}

    before = moto_state()
    assert parsing.get_model_map()["AWS::S3::Bucket"].__module__ == "moto.s3.models"
    assert deploy_bucket() == "CREATE_COMPLETE"

    emulator.install()
    assert parsing.get_model_map()["AWS::S3::Bucket"].__module__ == "loanstack.emulator.s3"
    changed = {t for t, v in moto_state().items() if v is not before[t]}
    assert changed == set(before), sorted(set(before) - changed)

    emulator.uninstall()
    emulator.uninstall()  # idempotent
    assert moto_state() == before
    assert parsing.get_model_map()["AWS::S3::Bucket"].__module__ == "moto.s3.models"
    assert deploy_bucket() == "CREATE_COMPLETE"
    print("plain moto ok")
"""


def test_plain_moto_works_after_importing_the_emulator_and_after_uninstall() -> None:
    """Importing the emulator once broke moto's own model map ('Extension' has no attribute
    'TYPE'); install() changes every listed target and uninstall() puts each one back. A fresh
    interpreter, so that this process's installed patches stay as the other tests need them."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PLAIN_MOTO)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(SRC.parent),  # these sources, not an installed copy
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "plain moto ok" in done.stdout


def test_the_import_graph_of_loanstack_has_no_cycle() -> None:
    """Every import between loanstack's modules, function-level ones too, is acyclic."""
    modules = {
        ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in SRC.rglob("*.py")
    }
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and (node.module or "") in modules:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    graph[name].add(sub if sub in modules else str(node.module))
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name] - {name}):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*path, name, nxt])
            if nxt not in state:
                visit(nxt, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert "loanstack.emulator.patches" in graph and len(graph) > 20


@pytest.mark.parametrize(
    "read", private_reads.PRIVATE_READS, ids=lambda r: f"{r.owner.__qualname__}.{r.name}"
)
def test_each_private_moto_attribute_the_emulator_reads_still_exists(
    read: private_reads.PrivateRead,
) -> None:
    """moto's private names the emulator reads are fenced like its patches: a moto upgrade
    that renames one fails here, by name, not inside a deployment."""
    if read.kind == "method":
        assert callable(getattr(read.owner, read.name, None)), f"moto no longer has {read.name}"
    else:
        sources = "".join(
            inspect.getsource(cls)
            for cls in read.owner.__mro__
            if cls.__module__.startswith("moto")
        )
        assert re.search(rf"self\.{read.name}\s*(?::[^=]+)?=", sources), (
            f"moto's {read.owner.__qualname__} no longer sets {read.name}"
        )


def test_every_private_moto_name_the_emulator_reads_is_listed() -> None:
    """The list is complete: each `._name` an emulator module reads off a moto object is there
    (the emulator's own private names, set in its own modules, are not moto's)."""
    listed = {r.name for r in private_reads.PRIVATE_READS} | {p.name for p in patches.PATCHES}
    own: set[str] = set()
    read: set[str] = set()
    for path in sorted((SRC / "emulator").glob("*.py")):
        text = path.read_text()
        own |= set(re.findall(r"self\.(_[a-z][a-z_]*)\s*(?::[^=\n]+)?=", text))
        own |= set(re.findall(r"def (_[a-z][a-z_]*)\(", text))
        # a private module on an import line fails at import time, loudly: not a read
        code = re.sub(r"(?m)^from moto\S* import .*$", "", text)
        read |= set(re.findall(r"\.(_[a-z][a-z_]*)\b", code))
    assert read - own - listed == set()
