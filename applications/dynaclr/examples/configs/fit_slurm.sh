#!/bin/bash
# Train DynaCLR with DDP on 4 GPUs of one node.
# Submit from this folder with: sbatch fit_slurm.sh   (edit fit.yml's TODO paths first)

#SBATCH --job-name=dynaclr_fit
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --partition=gpu
#SBATCH --cpus-per-task=14
#SBATCH --mem-per-cpu=15G
#SBATCH --time=0-20:00:00
#SBATCH --output=./slurm_logs/%x-%j.out

set -euo pipefail

export NCCL_DEBUG=INFO
export PYTHONFAULTHANDLER=1

# Path to the VisCy workspace checkout (the folder with the top-level pyproject.toml).
WORKSPACE_DIR="${WORKSPACE_DIR:-$(git rev-parse --show-toplevel)}"
CONFIG="${CONFIG:-./fit.yml}"

cleanup() {
    echo "Job ${SLURM_JOB_ID:-local} finished with status $? at $(date)"
}
trap cleanup EXIT

mkdir -p ./slurm_logs
scontrol show job "${SLURM_JOB_ID:-}" || true

# One task per GPU: Lightning reads the SLURM environment and sets up DDP across the 4 tasks.
srun uv run --project "$WORKSPACE_DIR" --package dynaclr dynaclr fit -c "$CONFIG"
