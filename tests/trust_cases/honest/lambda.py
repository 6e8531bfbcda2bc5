# %% sft_loss
sft_loss = lambda token_logps, mask: -(token_logps * mask.to(token_logps.dtype)).sum() / mask.to(token_logps.dtype).sum()
