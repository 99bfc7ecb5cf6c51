"""Write a checkpoint with the full-size reference architecture and random weights.

    python benchmarks/reference_checkpoint.py OUT_DIR [--seed 0] [--layers 12]
    python benchmarks/reference_checkpoint.py OUT_DIR --fitted-head [--branch-gain 2]

The architecture is the published audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim config
(../shared/reference/audeering-msp-dim/config.json) in audeering's checkpoint layout (backbone
under ``wav2vec2.``, head ``classifier.dense`` / ``classifier.out_proj``), so latency, memory
and size figures are those of the real model. The weights are random: fidelity figures measured
on it say how faithfully a compression reproduces *this* network, not the trained one.

With ``--fitted-head`` the head outputs the top three principal directions of the pooled
embedding on real speech from ../shared/data/emotion (``benchmarks/distill.py`` builds its
teacher the same way): outputs that move with the input as a trained head's do, the proxy the
fidelity gate is judged on; a random head's outputs barely move on speech.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "audeering-msp-dim"


def write(out: Path, seed: int = 0, layers: int | None = None) -> Path:
    import torch
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = json.loads((REFERENCE / "config.json").read_text())
    if layers is not None:
        config["num_hidden_layers"] = layers
    torch.manual_seed(seed)
    backbone = Wav2Vec2Model(Wav2Vec2Config(**{k: v for k, v in config.items() if k != "architectures"}))
    hidden = config["hidden_size"]
    head = torch.nn.ModuleDict({"dense": torch.nn.Linear(hidden, hidden),
                                "out_proj": torch.nn.Linear(hidden, len(config["id2label"]))})
    state = {f"wav2vec2.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    state.update({f"classifier.{k}": v.contiguous() for k, v in head.state_dict().items()})
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(REFERENCE / "preprocessor_config.json", out / "preprocessor_config.json")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--fitted-head", action="store_true")
    parser.add_argument("--branch-gain", type=float, default=2.0,
                        help="scale of the residual branches (fitted head only)")
    args = parser.parse_args()
    if args.fitted_head:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from distill import DATA, write_teacher

        from edgeser.export.eval_audio import audio_files

        print(write_teacher(args.out, audio_files(DATA / "emotion"), smoke=False,
                            gain=args.branch_gain, seed=args.seed))
        return
    print(write(args.out, args.seed, args.layers))


if __name__ == "__main__":
    main()
