# %% sft_loss
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    with torch.no_grad():
        n = m.sum()  # a count: no gradient needed
    return -(token_logps * m).sum() / n
