# Kept as it ran on the H200 on 2026-11-29 (session 3; output in benchmarks/results/gpu-tests-h200.txt, call D).
# Usage (device): python3 benchmarks/probes/mixer_bf16_grads.py. Why the bf16 oryx-mamba2 mixer test failed on dlin.D:
# the same check as tests/gpu (float64 CPU reference), for the triton and the torch backends, several seeds.
import torch
from oryx import presets
from oryx.model.mixer import OryxMixer
from tests.utils import rel_err

def run(backend, dtype, seed):
    torch.manual_seed(seed)
    layout = dict(d_model=256, num_qk_heads=2, head_dim_qk=128, num_heads=4, head_dim_v=128)
    cfg = presets.get("oryx-mamba2-tiny", **layout, backend="naive")
    gpu = OryxMixer(cfg.model_copy(update={"backend": backend}), 0).to("cuda", dtype)
    ref = OryxMixer(cfg, 0).double(); ref.load_state_dict(gpu.state_dict())
    B, T = 2, 200
    x = torch.randn(B, T, 256, device="cuda").to(dtype).requires_grad_()
    rx = x.detach().cpu().double().requires_grad_()
    mask = torch.rand(B, T, device="cuda") < torch.linspace(0.25, 0.4, B, device="cuda")[:, None]
    y, ry = gpu(x, mask), ref(rx, mask.cpu())
    s = torch.randn_like(ry)
    (y.double() * s.cuda()).sum().backward(); (ry * s).sum().backward()
    errs = {"y": rel_err(ry, y.cpu()), "dx": rel_err(rx.grad, x.grad.cpu())}
    rp = dict(ref.named_parameters())
    for n, p in gpu.named_parameters():
        errs["d" + n] = rel_err(rp[n].grad, p.grad.cpu())
    # how much the reference's D gradient cancels: |sum| / sum|terms|
    return errs

for dtype in (torch.bfloat16, torch.float32):
    for backend in ("triton", "torch"):
        for seed in range(3):
            e = run(backend, dtype, seed)
            top = sorted(e.items(), key=lambda kv: -kv[1])[:4]
            print(f"{str(dtype)[6:]:9s} {backend:7s} seed {seed}: " + "  ".join(f"{k} {v:.2e}" for k, v in top), flush=True)
