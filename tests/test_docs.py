"""The README documents every spec key, and the commands CI runs are the README's."""

import re

from ibjax import spec as spec_mod
from tests.helpers import ROOT


def _fields(cls, prefix=""):
    for name, field in cls.model_fields.items():
        yield prefix + name
        ann = field.annotation
        for cand in (ann, *getattr(ann, "__args__", ())):
            inner = getattr(cand, "__args__", (None,))[0] if getattr(cand, "__origin__", None) is list else cand
            if isinstance(inner, type) and issubclass(inner, spec_mod.BaseModel):
                yield from _fields(inner, prefix + name + ".")
                break


def test_readme_yaml_reference_lists_every_key():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## YAML reference", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    code = "\n".join(line.split("#", 1)[0] for line in block.splitlines())
    keys = set(re.findall(r"([a-z_]+):", code))
    for dotted in _fields(spec_mod.SweepSpec):
        assert dotted.split(".")[-1] in keys, f"README YAML reference misses {dotted}"


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(setup) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    for cmd in setup:
        assert cmd.replace("pip install", "python -m pip install", 1) in ci or cmd in ci
