"""loadgen: load generator and capacity planner for Amazon Bedrock LLM traffic."""

__version__ = "0.1.0"
