"""Train SimCSE, with or without the Gumbel-Softmax token-keep proxy.

    python train.py --train_file data/wiki1m_for_simcse.txt --output_dir outputs/unsup-gs
    python train.py configs/cpu-minilm-unsup-gs.yaml            # the same from a YAML/JSON file
"""

from __future__ import annotations

import json
import logging
import os
import sys

import transformers
from transformers import HfArgumentParser, set_seed

from simcse_gs.arguments import DataArguments, ModelArguments, SimCSETrainingArguments
from simcse_gs.data import SimCSECollator, load_train_dataset
from simcse_gs.modeling import SimCSEGSModel
from simcse_gs.sts_eval import STSEvaluator
from simcse_gs.trainer import SimCSETrainer

logger = logging.getLogger("train")


def parse_args(argv: list[str]) -> tuple[ModelArguments, DataArguments, SimCSETrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataArguments, SimCSETrainingArguments))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(os.path.abspath(argv[0]))
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    set_seed(training_args.seed)

    load_kwargs = {"cache_dir": model_args.cache_dir, "trust_remote_code": model_args.trust_remote_code}
    model = SimCSEGSModel.from_backbone(
        model_args.model_name_or_path,
        proxy_model_name_or_path=model_args.proxy_model_name_or_path,
        proxy_num_layers=model_args.proxy_num_layers,
        load_kwargs=load_kwargs,
        **model_args.model_settings(),
    )
    tokenizer = model.tokenizer
    with training_args.main_process_first(desc="tokenizing the training file"):
        train_dataset = load_train_dataset(data_args.train_file, tokenizer, data_args.max_seq_length,
                                           data_args.preprocessing_num_workers, model_args.cache_dir)
    evaluator = None
    if training_args.eval_strategy != "no" or training_args.load_best_model_at_end:
        evaluator = STSEvaluator(data_args.senteval_data, data_args.eval_split, data_args.eval_batch_size)

    trainer = SimCSETrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=SimCSECollator(tokenizer, model_args.do_mlm, model_args.mlm_probability),
        processing_class=tokenizer,
        sts_evaluator=evaluator,
    )
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    trainer.save_state()
    metrics = dict(result.metrics)
    if evaluator is not None:
        metrics.update(trainer.evaluate())
    if trainer.is_world_process_zero():
        trainer.save_metrics("all", metrics)
        logger.info("Finished. Model in %s; metrics: %s", training_args.output_dir, json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
