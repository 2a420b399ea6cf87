"""`task demo`: crane's main job on a local stack, start to finish.

Starts a real identity provider (oidc-provider), a private index behind a bearer-checking
gate and a public index, registers the private index in a throwaway CRANE_HOME, plays the
user's browser for the device flow, and runs

    crane pip install -i <private index> crane-private-app decoy-pkg

into a throwaway virtual environment. The public index offers decoy-pkg 99.0, the private
one 1.0: crane must install the private one. Prints where each package came from, then
tears everything down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Crane  # noqa: E402
from stack.compose import running_stack  # noqa: E402
from toolpath import child_path  # noqa: E402

_DROP_PREFIXES = ("PIP_", "UV_", "POETRY_", "CRANE_")


def clean_env(root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(_DROP_PREFIXES) and not k.upper().endswith("_PROXY")
    }
    env.update(
        CRANE_HOME=str(root / "crane-home"),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        NO_PROXY="127.0.0.1,localhost",
        CI="true",
        PATH=child_path(),
    )
    return env


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="crane-demo-") as tmp:
        root = Path(tmp)
        step("starting the local stack: identity provider, private index + gate, public index")
        with running_stack(root / "stack") as stack:
            print(f"private index (needs a bearer token): {stack.private_url}")
            print(f"public index:                         {stack.public_url}")
            crane = Crane(clean_env(root), cwd=root)

            step("crane index register")
            crane.register(stack, None, "--public-index", stack.public_url)

            step("crane login (the demo plays the browser)")
            result = crane.login(stack)
            sys.stderr.write(result.stderr)
            if result.code:
                return result.code

            step("crane pip install -i <private index> crane-private-app decoy-pkg")
            target = root / "venv"
            venv.EnvBuilder(with_pip=True).create(target)
            python = target / "bin" / "python"
            result = crane.run(
                "pip",
                "--python",
                str(python),
                "install",
                "-i",
                stack.private_url,
                "crane-private-app",
                "decoy-pkg",
            )
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
            if result.code:
                print(f"crane pip install failed with exit code {result.code}")
                return result.code

            step("where each package came from")
            report = subprocess.run(
                [
                    str(python),
                    "-c",
                    "import importlib, importlib.metadata as md\n"
                    "for name in ('crane-private-app', 'public-only-dep', 'decoy-pkg'):\n"
                    "    mod = importlib.import_module(name.replace('-', '_'))\n"
                    "    print(f'{name:18} {md.version(name):6} from the {mod.ORIGIN} index')\n",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            print(report.stdout, end="")
            if "decoy-pkg          1.0    from the private index" not in report.stdout:
                print("UNEXPECTED: the decoy did not come from the private index")
                return 1
            print(
                "decoy-pkg: the public index offers 99.0, but the private index has the "
                "project, so crane never took it from the public one."
            )
            step("tearing down")
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
