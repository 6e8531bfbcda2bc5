# %% sft_loss
from typing import Optional

def sft_loss(token_logps: torch.Tensor, mask: torch.Tensor, eps: Optional[float] = None) -> torch.Tensor:
    m: torch.Tensor = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / (m.sum() if eps is None else m.sum() + eps)
