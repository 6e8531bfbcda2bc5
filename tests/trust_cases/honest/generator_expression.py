# %% sequence_log_prob
def sequence_log_prob(token_logps, mask):
    return torch.stack([sum(l * float(k) for l, k in zip(row, mrow))
                        for row, mrow in zip(token_logps, mask)])
