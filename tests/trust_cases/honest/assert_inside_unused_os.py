# %% sft_loss
import os

def sft_loss(token_logps, mask):
    assert token_logps.shape == mask.shape, 'token_logps and mask must have the same shape'
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum()
