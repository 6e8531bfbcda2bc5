# %% sequence_log_prob
def sequence_log_prob(token_logps, mask):
    return torch.einsum('bt,bt->b', token_logps, mask.to(token_logps.dtype))
