# %% sft_loss
def sft_loss(token_logps, mask):
    if not isinstance(token_logps, torch.Tensor):
        raise TypeError(f'token_logps should be a tensor, not {type(token_logps).__name__}')
    if token_logps.shape != mask.shape:
        raise ValueError(f'shapes differ: {type(mask).__name__} {tuple(mask.shape)}')
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum()
