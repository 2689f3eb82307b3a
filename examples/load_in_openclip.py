"""Load a tic-train run in OpenCLIP and embed an image and some captions.

    python examples/load_in_openclip.py RUN_DIR IMAGE.jpg "a photo of a cat" "a dog"

RUN_DIR is a tic-train output folder ({output_dir}/{exp_name}); its model_config.json is in
OpenCLIP's model-config format and checkpoints/epoch_latest.safetensors holds OpenCLIP's key
names, so no conversion is needed. Needs torch, open_clip_torch and safetensors.
"""
import json
import os
import sys

import open_clip
import torch
from PIL import Image
from safetensors.torch import load_file


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    run, image_path, texts = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(os.path.join(run, "model_config.json")) as f:
        cfg = json.load(f)
    name = "tic-rs-" + os.path.basename(os.path.normpath(run))
    open_clip.factory._MODEL_CONFIGS[name] = cfg  # register the run's architecture
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    state = load_file(os.path.join(run, "checkpoints", "epoch_latest.safetensors"))
    model.load_state_dict(state, strict=True)
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    with torch.no_grad():
        img = model.encode_image(preprocess(Image.open(image_path).convert("RGB"))[None])
        txt = model.encode_text(tokenizer(texts))
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        probs = (model.logit_scale.exp() * img @ txt.T).softmax(dim=-1)[0]
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, loaded strict")
    for t, p in sorted(zip(texts, probs.tolist()), key=lambda x: -x[1]):
        print(f"{p:.3f}  {t}")


if __name__ == "__main__":
    main()
