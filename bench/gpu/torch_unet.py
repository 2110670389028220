"""PyTorch eager baseline for bench/gpu/run.sh: SD1.5's UNet2DConditionModel (diffusers' own source,
carried unpacked on PYTHONPATH) at the shapes of the sd15 table, fp32 and bf16, random weights.

Prints one JSON object: {"fp32": {...}, "bf16": {...}}, each with the median milliseconds of
  - "unet_forward": batch 2 + classifier-free guidance (4 x 4 x 64 x 64, 77 x 768 context), no grad;
  - "lora_step": forward + backward of the same batch with gradient checkpointing, grads on a
    rank-4 LoRA of to_q/to_k/to_v/to_out.0 only (peft is on that machine; without it, on to_q/to_v
    weights' requires_grad as the cheapest stand-in, named in "lora").
Run: python3 bench/gpu/torch_unet.py --config unet_config.json [--latent 64] [--iters 5]
"""
import argparse
import json
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    a = ap.parse_args()

    import torch
    from diffusers import UNet2DConditionModel
    import diffusers

    config = json.load(open(a.config))
    out = {"torch": torch.__version__, "diffusers": diffusers.__version__,
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    dev = "cuda" if torch.cuda.is_available() else "cpu"

    def timed(fn, iters):
        fn()
        if dev == "cuda":
            torch.cuda.synchronize()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            if dev == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        unet = UNet2DConditionModel.from_config(config).to(dev, dtype)
        x = torch.randn(4, 4, a.latent, a.latent, device=dev, dtype=dtype)
        ctx = torch.randn(4, 77, config.get("cross_attention_dim", 768), device=dev, dtype=dtype)
        t = torch.full((4,), 999, device=dev)
        row = {"parameters": sum(p.numel() for p in unet.parameters())}

        def forward():
            with torch.no_grad():
                eps = unet(x, t, ctx).sample
                u, c = eps.chunk(2)
                return u + 5.0 * (c - u)

        row["unet_forward"] = timed(forward, a.iters)
        unet.requires_grad_(False)
        lora = "peft rank 4 on to_q, to_k, to_v, to_out.0"
        try:
            from peft import LoraConfig
            unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        except Exception as e:  # noqa: BLE001 - report the stand-in instead of failing the run
            lora = f"no peft ({type(e).__name__}: {e}); to_q/to_v weights trainable instead"
            for n, p in unet.named_parameters():
                if n.endswith("to_q.weight") or n.endswith("to_v.weight"):
                    p.requires_grad_(True)
        unet.enable_gradient_checkpointing()
        unet.train()
        params = [p for p in unet.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            eps = unet(x, t, ctx).sample
            loss = eps.float().square().mean()
            loss.backward()
            opt.step()

        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        row["lora_step"] = timed(step, a.iters)
        row["lora"] = lora
        if dev == "cuda":
            row["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
        out[name] = row
        del unet, opt
        if dev == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
