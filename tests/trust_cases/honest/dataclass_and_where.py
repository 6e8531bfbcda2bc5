# %% sft_loss
from dataclasses import dataclass

@dataclass
class Batch:
    logps: torch.Tensor
    mask: torch.Tensor

def sft_loss(token_logps, mask):
    b = Batch(token_logps, mask.bool())
    picked = torch.where(b.mask, b.logps, torch.zeros_like(b.logps))
    return -picked.sum() / b.mask.sum().to(b.logps.dtype)
