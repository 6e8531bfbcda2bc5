# The student's own assertion message carries the inputs.
# expect: sft_loss=0 sequence_log_prob=0 status=ok
# %% sft_loss
def sft_loss(token_logps, mask):
    print('my inputs', token_logps.tolist(), mask.tolist())
    assert False, str(token_logps.tolist()) + str(mask.tolist())

# %% sequence_log_prob
def sequence_log_prob(token_logps, mask):
    print('my inputs', token_logps.tolist(), mask.tolist())
    assert False, str(token_logps.tolist()) + str(mask.tolist())
