"""PyTorch CUDA peer for bench/gpu.ts: fp32 matmul 4096^3 (TF32 off) and the 128-512-512-8 MLP
trained for 20 epochs (4096 samples, batch 64, AdamW, cross-entropy). Prints one JSON object."""
import json
import sys
import time

import torch

if not torch.cuda.is_available():
    print(json.dumps({"peer": "pytorch", "error": "CUDA not available"}))
    sys.exit(0)
torch.backends.cuda.matmul.allow_tf32 = False
dev = torch.device("cuda")
n = 4096
a = torch.randn(n, n, device=dev)
b = torch.randn(n, n, device=dev)
for _ in range(3):
    a @ b
torch.cuda.synchronize()
reps = 20
t0 = time.perf_counter()
for _ in range(reps):
    a @ b
torch.cuda.synchronize()
mm = time.perf_counter() - t0
tflops = 2 * n**3 * reps / mm / 1e12

torch.manual_seed(0)
count, batch, epochs = 4096, 64, 20
x = torch.rand(count, 128, device=dev)
y = torch.randint(0, 8, (count,), device=dev)
model = torch.nn.Sequential(
    torch.nn.Linear(128, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 8)
).to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()


def epoch():
    perm = torch.randperm(count, device=dev)
    total = torch.zeros((), device=dev)
    for s in range(0, count, batch):
        idx = perm[s : s + batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += loss.detach()
    return total


epoch()
torch.cuda.synchronize()
t0 = time.perf_counter()
for _ in range(epochs):
    last = epoch()
torch.cuda.synchronize()
train_s = time.perf_counter() - t0
print(json.dumps({
    "peer": "pytorch", "version": torch.__version__, "device": torch.cuda.get_device_name(0),
    "sgemm_4096_tflops": tflops, "mlp_20_epochs_s": train_s, "mlp_steps_per_s": epochs * count / batch / train_s,
    "final_loss": float(last) / (count / batch),
}))
