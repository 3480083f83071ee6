"""The scripts that run on a lent GPU machine (bench/device/device_check.sh and what it calls), apart from the CPU
benchmarks beside this folder; shared/docs/DEVICE-NOTES.md says what travels there."""
