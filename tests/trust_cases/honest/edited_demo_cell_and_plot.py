# %% added at end
import matplotlib.pyplot as plt
for step in range(STEPS):
    pass
plt.plot([float(sft_loss(torch.zeros(2, 3), torch.ones(2, 3)))])
plt.show()
