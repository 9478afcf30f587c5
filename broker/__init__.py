"""The broker: routes commands to worker pools, holds queues, deadlines and breakers."""
