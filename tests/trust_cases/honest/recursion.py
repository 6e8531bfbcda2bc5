# %% sequence_log_prob
def sequence_log_prob(token_logps, mask):
    if token_logps.shape[0] == 0:
        return token_logps.new_zeros(0)
    head = (token_logps[0] * mask[0].to(token_logps.dtype)).sum().unsqueeze(0)
    return torch.cat([head, sequence_log_prob(token_logps[1:], mask[1:])])
