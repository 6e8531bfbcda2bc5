# %% sft_loss
_kernels = {}

def sft_loss(token_logps, mask):
    key = (token_logps.dtype, mask.dtype)
    if key not in _kernels:
        _kernels[key] = lambda lp, m: -(lp * m.to(lp.dtype)).sum() / m.to(lp.dtype).sum()
    return _kernels[key](token_logps, mask)
