# %% sequence_log_prob
def sequence_log_prob(token_logps, mask):
    dims = list(range(token_logps.dim()))
    dims.remove(0)  # every dimension but the batch
    return (token_logps * mask.to(token_logps.dtype)).sum(dim=dims)
