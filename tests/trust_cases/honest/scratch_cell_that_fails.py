# %% added before sft_loss
x = undefined_name + 1  # a scratch cell left broken
