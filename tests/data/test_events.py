"""Events files and extending a dataset with them: ids keep their indices, new ones are
appended, time order and dedup follow the data config, errors name file:line:field."""

import json

import numpy as np
import pytest

from seqrec_jax.data.dataset import SequenceDataset
from seqrec_jax.data.events import extend_dataset, positive, read_events_file
from seqrec_jax.data.interactions import DataFormatError


def small_dataset() -> SequenceDataset:
  # user 10: items 1, 2 (raw 100, 200); user 20: item 3 (raw 300)
  return SequenceDataset(offsets=np.array([0, 2, 3]), items=np.array([1, 2, 3], np.int32),
                         times=np.array([5, 6, 7], np.int64), user_ids=np.array([10, 20]),
                         item_ids=np.array([0, 100, 200, 300]))


def write(path, rows):
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return str(path)


def test_new_users_and_items_get_the_next_ids_and_old_ones_keep_theirs(tmp_path):
  ev = read_events_file(write(tmp_path / "e.jsonl", [
      {"user": 20, "item": 400, "time": 9},
      {"user": "10", "item": "300", "time": 8},  # known ids spelled as strings
      {"user": "ann", "item": 400, "time": 1},   # a new user with a string id
      {"user": 10, "item": 100, "time": 10},     # already in user 10's history
  ]))
  data, rep = extend_dataset(small_dataset(), ev, dedup="first")
  assert data.item_ids.tolist() == [0, 100, 200, 300, 400]  # all ints: still ints
  assert [str(u) for u in data.user_ids.tolist()] == ["10", "20", "ann"]
  assert data.sequence(0).tolist() == [1, 2, 3]  # 300 appended; the repeat of 100 dropped
  assert data.sequence(1).tolist() == [3, 4]
  assert data.sequence(2).tolist() == [4]
  assert rep["new_users"] == 1 and rep["new_items"] == 1 and rep["dedup_dropped"] == 1
  assert rep["used"] == 3
  assert data.times[data.offsets[0]:data.offsets[1]].tolist() == [5, 6, 8]


def test_int_ids_stay_ints_and_dedup_modes(tmp_path):
  ev = read_events_file(write(tmp_path / "e.jsonl", [
      {"user": 10, "item": 100, "time": 9}, {"user": 10, "item": 500, "time": 10}]))
  last, _ = extend_dataset(small_dataset(), ev, dedup="last")
  assert last.item_ids.dtype.kind == "i" and last.item_ids.tolist()[-1] == 500
  assert last.sequence(0).tolist() == [2, 1, 4]  # 100 moved to its new place
  none, rep = extend_dataset(small_dataset(), ev, dedup="none")
  assert none.sequence(0).tolist() == [1, 2, 1, 4] and rep["dedup_dropped"] == 0


def test_events_go_in_time_order_and_old_times_after_the_history(tmp_path):
  ev = read_events_file(write(tmp_path / "e.jsonl", [
      {"user": 20, "item": 200, "time": 30}, {"user": 20, "item": 100, "time": 2}]))
  data, rep = extend_dataset(small_dataset(), ev)
  assert data.sequence(1).tolist() == [3, 1, 2]  # time 2 sorts first, after the history
  assert rep["out_of_order"] == 1  # time 2 < the user's last known time 7


def test_csv_and_the_feedback_log(tmp_path):
  p = tmp_path / "e.csv"
  p.write_text("\ufeffuser,item,time,event\n10,300,9,click\n20,100,9,skip\n")
  ev = read_events_file(str(p))
  keep, why = positive(ev)
  assert keep.tolist() == [True, False] and why["not_positive_event"] == 1
  # the service's log: no "time" falls back to "received"; a cut last line is ignored
  log = tmp_path / "feedback.jsonl"
  log.write_text(json.dumps({"user": 10, "item": 300, "event": "click", "seq": 0,
                             "received": 11.0}) + "\n" + '{"user": 10, "it')
  ev = read_events_file(str(log))
  assert len(ev) == 1 and ev.times == [11.0]


def test_low_ratings_are_not_interactions(tmp_path):
  ev = read_events_file(write(tmp_path / "e.jsonl", [
      {"user": 10, "item": 300, "event": "rating", "value": 2},
      {"user": 10, "item": 300, "event": "rating", "value": 5}]))
  keep, why = positive(ev, min_rating=4)
  assert keep.tolist() == [False, True] and why["below_min_rating"] == 1


@pytest.mark.parametrize("text,message", [
    ('{"user": 1}\n', "e.jsonl:1: missing field 'item'"),
    ('{"user": 1, "item": 2}\n[1, 2]\n', "e.jsonl:2: expected a JSON object"),
    ('{"user": 1, "item": 2, "time": "soon"}\n', "e.jsonl:1: field 'time' must be a number"),
    ('{"user": "", "item": 2}\n', "e.jsonl:1: field 'user' is empty"),
    ('{"user": true, "item": 2}\n', "e.jsonl:1: field 'user' must be an int or a string id"),
    ('oops\n{"user": 1, "item": 2}\n', "e.jsonl:1: not a JSON object"),
])
def test_bad_events_name_file_line_and_field(tmp_path, text, message):
  p = tmp_path / "e.jsonl"
  p.write_text(text)
  with pytest.raises(DataFormatError, match=message.replace("[", r"\[")):
    read_events_file(str(p))


def test_csv_without_an_item_column(tmp_path):
  p = tmp_path / "e.csv"
  p.write_text("user,thing\n1,2\n")
  with pytest.raises(DataFormatError, match=r"e.csv:1: the header must name 'item'"):
    read_events_file(str(p))


def test_id_spellings_match_and_new_ids_are_counted_once(tmp_path):
  p = tmp_path / "e.csv"
  p.write_text("user,item,time\n10,300.0,9\n20,7,10\n20.0,7.0,11\n10, 7 ,12\n")
  data, rep = extend_dataset(small_dataset(), read_events_file(str(p)), dedup="none")
  assert rep["new_items"] == 1 and rep["new_users"] == 0  # 7, "7.0", " 7 ": one new item
  assert data.item_ids.dtype.kind == "i" and data.item_ids.tolist()[-1] == 7
  assert data.sequence(0).tolist() == [1, 2, 3, 4]  # "300.0" is item 300
  assert data.sequence(1).tolist() == [3, 4, 4]
