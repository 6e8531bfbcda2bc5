# %% sft_loss
def sft_loss(token_logps, mask):
    input = token_logps
    signal = mask.to(input.dtype)
    reference = (input * signal).sum()
    return -reference / signal.sum()
