"""A training script written as W&B's own sweep examples are: it imports wandb, not sweepd.

Under `wandb agent` or `sweepd agent` (`sweepd run examples/wandb-sweep.yaml`) alike, wandb.config
holds the run's parameters and what it logs with wandb.log is the sweep's metric. Without a W&B
account, run it with WANDB_MODE=offline.
"""

import math
import random
import time

import wandb


def train_one_epoch(epoch, lr, bs):
    """A stand-in for real training: a loss that falls with the epochs, least near lr = 0.01."""
    acc = 0.25 + ((epoch / 30) + (random.random() / 10))
    loss = 0.2 + (1 - ((epoch - 1) / 10 + random.random() / 5))
    loss *= 1 + (math.log10(lr) + 2) ** 2 / 4 + 16 / bs
    return acc, loss


def evaluate_one_epoch(epoch, lr, bs):
    acc, loss = train_one_epoch(epoch, lr, bs)
    return acc - 0.05, loss + 0.05


def main():
    run = wandb.init(config={"lr": 0.1, "batch_size": 32, "epochs": 5})
    lr = wandb.config.lr
    bs = wandb.config.batch_size
    epochs = wandb.config.epochs

    for epoch in range(1, epochs + 1):
        train_acc, train_loss = train_one_epoch(epoch, lr, bs)
        val_acc, val_loss = evaluate_one_epoch(epoch, lr, bs)
        wandb.log(
            {
                "epoch": epoch,
                "train_acc": train_acc,
                "train_loss": train_loss,
                "val_acc": val_acc,
                "val_loss": val_loss,
            }
        )
        time.sleep(0.2)
    run.summary["best_val_loss"] = val_loss
    run.finish()


if __name__ == "__main__":
    main()
