"""Demo corpus and demo labeling activity, generated in code from a seed.

``generate_demo_videos`` makes Bilibili-like records (Chinese titles, descriptions and
tags): about 27% in-scope vocal-synth songs (VOCALOID/UTAU/Synthesizer V originals and
翻调 covers), the rest out of scope — games, vlogs, 宅舞 dance covers, cooking, tech
reviews, human-sung 翻唱 covers, music made without singing synthesizers. Some
out-of-scope videos mention vocal-synth words (a human cover of a 初音ミク song, a dance
to a VOCALOID song), so the task is not trivially keyword-based. Everything but the
timestamps depends only on the seed; timestamps are relative to ``now`` (midnight UTC
of today by default), so a given seed and day give identical records.

``load_demo_data`` upserts them through the regular import service, then — unless the
demo users already have labels — lets ``labeler1..4`` label ~60% of the videos (2–3
labelers each, each right ~85–95% of the time, less on the ambiguous categories, a few
changed minds and undone labels) and ``reviewer1`` resolve some of the conflicts, so the
review queue and the agreement statistics have something to show. The record's ground
truth is kept in ``raw["demo"]`` (``in_scope``, ``category``) for inspection only.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone

from core.roles import LABELERS, REVIEWERS
from labeling.models import Label, LabelSource, Review, Video, VideoConsensus
from labeling.video_import import ImportResult, import_video_records

DEFAULT_VIDEO_COUNT: Final = 3000
DEFAULT_SEED: Final = 7
IN_SCOPE_SHARE: Final = 0.27
LABELED_SHARE: Final = 0.6
# Each demo labeler's chance of giving the ground-truth answer on a clear-cut video.
DEMO_LABELERS: Final = {"labeler1": 0.95, "labeler2": 0.92, "labeler3": 0.88, "labeler4": 0.85}
DEMO_REVIEWER: Final = "reviewer1"
REVIEWED_CONFLICT_SHARE: Final = 0.35
CHANGED_MIND_SHARE: Final = 0.04
UNDO_SHARE: Final = 0.02
LABEL_DAYS: Final = 30
PUBLISHED_DAYS: Final = 3 * 365
BASE_AID: Final = 100_000_000
WRITE_CHUNK: Final = 1000
BASE58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# --- vocabulary -------------------------------------------------------------------------

SYNTH_SINGERS: Final = (
    ("洛天依", "VOCALOID"), ("言和", "VOCALOID"), ("乐正绫", "VOCALOID"), ("乐正龙牙", "VOCALOID"),
    ("墨清弦", "VOCALOID"), ("徵羽摩柯", "VOCALOID"), ("初音ミク", "VOCALOID"), ("镜音リン", "VOCALOID"),
    ("巡音ルカ", "VOCALOID"), ("GUMI", "VOCALOID"), ("星尘", "Synthesizer V"), ("赤羽", "Synthesizer V"),
    ("苍穹", "Synthesizer V"), ("诗岸", "Synthesizer V"), ("海伊", "Synthesizer V"), ("牧心", "Synthesizer V"),
    ("重音テト", "UTAU"), ("桃音モモ", "UTAU"), ("可不", "CeVIO"), ("心华", "VOCALOID"),
)
SONG_WORDS_A: Final = (
    "春日", "星河", "夜航", "月下", "心跳", "雨季", "深海", "花火", "未来", "电子", "回声", "旅人", "梦境",
    "落日", "晚风", "银河", "倒影", "时光", "迷途", "白昼", "黄昏", "霓虹", "初雪", "海岸", "云端", "琉璃",
    "故城", "长夜", "萤火", "山海", "灯塔", "纸鹤",
)
SONG_WORDS_B: Final = (
    "之歌", "物语", "进行曲", "幻想", "的你", "信号", "终点站", "来信", "漫游", "协奏", "回忆录", "谣",
    "与你", "尽头", "旅行", "坠落", "告白", "恋歌", "列车", "狂想曲",
)
PEOPLE: Final = (
    "ilem", "JUSF周存", "ChiliChill", "纯白", "阿良良木健", "H.K.君", "小旭PRO", "Mili", "雨狸", "一棵小葱",
    "COP", "ZUN", "Tino", "西木", "小野道ono", "黑白灰", "平行四界", "星葵", "墨韵", "阿苏", "夏半", "流年",
    "千秋", "南北", "风间", "柚子", "空白", "十月", "柒七", "木兮",
)
SYNTH_LINES: Final = (
    "这次尝试了新的调教方式，希望大家喜欢", "第一次投稿原创曲，请多指教", "写给所有在路上的人",
    "调教花了两个月，终于完成了", "感谢曲绘老师和PV老师", "伴奏已上传，欢迎翻调", "副歌部分真的很努力了",
    "三周年快乐！", "本曲参加了中文虚拟歌手创作大赛", "歌词本见评论区", "耳机食用效果更佳",
)
SYNTH_EXTRA_TAGS: Final = (
    "VOCALOID中文曲", "中文VOCALOID", "虚拟歌手", "术力口", "V家", "调教", "音乐", "原创音乐", "VC", "歌姬",
    "虚拟歌姬", "电子音乐", "国风", "摇滚",
)
HUMAN_SINGERS: Final = ("小缘", "等什么君", "双笙", "银临", "河图", "封茗囧菌", "Hita", "少恭", "冯提莫", "某人")
GAMES: Final = ("原神", "我的世界", "崩坏：星穹铁道", "王者荣耀", "英雄联盟", "艾尔登法环", "黑神话：悟空", "明日方舟", "蔚蓝档案", "塞尔达传说")
CITIES: Final = ("成都", "重庆", "杭州", "上海", "北京", "西安", "长沙", "厦门", "大理", "青岛", "南京", "广州")
DISHES: Final = ("红烧肉", "麻婆豆腐", "可乐鸡翅", "番茄炒蛋", "糖醋排骨", "酸菜鱼", "葱油拌面", "水煮牛肉", "提拉米苏", "蛋炒饭")
GADGETS: Final = (
    "iPhone 16", "小米15", "华为Mate70", "MacBook Air", "Switch 2", "机械键盘", "降噪耳机", "4K显示器", "RTX 5070", "扫地机器人",
)
DANCE_SONGS: Final = ("极乐净土", "恋爱循环", "桃源恋歌", "ヒビカセ", "好き！雪！本気マジック", "Lovely Fruit", "心做し", "千本樱")
INSTRUMENTS: Final = ("钢琴", "吉他", "小提琴", "古筝", "二胡", "架子鼓", "尤克里里", "笛子")

UPLOADER_SUFFIXES: Final = ("君", "酱", "_Official", "工作室", "的日常", "Channel", "大魔王", "不是鸽子", "TV", "同学")
NICK_ADJECTIVES: Final = ("快乐的", "爱吃鱼的", "不会游泳的", "熬夜的", "一只", "今天也要摸鱼的", "迷路的", "早睡的", "会飞的", "努力的")
NICK_NOUNS: Final = ("猫", "咸鱼", "小熊", "兔子", "阿狸", "胖虎", "橘子", "汤圆", "企鹅", "柴犬", "仓鼠", "海豹")
SYNTH_COVER_LINES: Final = (
    "伴奏来自原作者，已获授权", "翻调练习，请多包涵", "喜欢这首歌很久了，终于翻调完了", "第一次尝试翻调", "参数调了一整个周末",
)


@dataclass(frozen=True)
class DemoVideo:
    record: dict[str, Any]  # an import record (the same fields the import service reads)
    in_scope: bool
    category: str
    ambiguous: bool  # out of scope but full of vocal-synth words, or the reverse

    @property
    def aid(self) -> int:
        return self.record["aid"]


@dataclass
class DemoResult:
    skipped: bool = False  # --if-empty and there were videos already
    videos: ImportResult | None = None
    labels_created: int = 0
    labeled_videos: int = 0
    reviews_created: int = 0
    labels_skipped: bool = False  # the demo users had labels already
    inconsistent_videos: int = 0
    new_users: list[tuple[str, str]] = field(default_factory=list)  # (username, password), shown once


# --- generation -------------------------------------------------------------------------


def _song(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(SONG_WORDS_A)
    return rng.choice(SONG_WORDS_A) + rng.choice(SONG_WORDS_B)


def _credits(rng: random.Random, roles: Iterable[str]) -> str:
    return "\n".join(f"{role}：{rng.choice(PEOPLE)}" for role in roles)


def _in_scope_video(rng: random.Random) -> tuple[str, str, list[str], str]:
    singer, engine = rng.choice(SYNTH_SINGERS)
    engine_tag = engine if engine != "Synthesizer V" or rng.random() < 0.5 else "SynthV"
    song = _song(rng)
    kind = rng.choices(("original", "cover", "duet"), weights=(6, 3, 1))[0]
    if kind == "original":
        title = rng.choice((
            f"【{singer}原创】{song}",
            f"【{singer}】{song}【原创PV付】",
            f"【{engine_tag}原创曲】{song}（feat.{singer}）",
            f"{song} / {singer}",
            f"【{singer}】{song}【{engine_tag}原创】",
        ))
        tags = [singer, engine_tag, "原创曲", "原创"]
        if "PV" in title or rng.random() < 0.4:
            tags.append("PV付")
        description = f"{rng.choice(SYNTH_LINES)}\n{_credits(rng, ('作词', '作曲', '编曲', '调教', '曲绘', 'PV'))}"
        category = "synth-original"
    elif kind == "cover":
        original = rng.choice(PEOPLE)
        title = rng.choice((
            f"【{singer}翻调】{song}",
            f"【{singer}】{song}（cover：{original}）",
            f"【{engine_tag}翻调】{song}【{singer}】",
        ))
        tags = [singer, engine_tag, "翻调", "VOCALOID翻调" if engine == "VOCALOID" else f"{engine_tag}翻调"]
        description = f"原曲：{original}\n{_credits(rng, ('调教', '混音'))}\n{rng.choice(SYNTH_COVER_LINES)}"
        category = "synth-cover"
    else:
        second, _ = rng.choice([s for s in SYNTH_SINGERS if s[0] != singer])
        title = f"【{singer}×{second}】{song}【原创】"
        tags = [singer, second, engine_tag, "合唱", "原创曲"]
        description = f"{rng.choice(SYNTH_LINES)}\n{_credits(rng, ('作词', '作曲', '调教'))}"
        category = "synth-duet"
    tags += rng.sample(SYNTH_EXTRA_TAGS, rng.randint(1, 4))
    return title, description, tags, category


def _out_of_scope_video(rng: random.Random) -> tuple[str, str, list[str], str, bool]:
    """(title, description, tags, category, ambiguous)."""
    category = rng.choices(
        ("game", "vlog", "dance", "cooking", "tech", "human-cover", "instrumental", "knowledge"),
        weights=(22, 14, 10, 10, 12, 14, 10, 8),
    )[0]
    episode = rng.randint(1, 120)
    if category == "game":
        game = rng.choice(GAMES)
        title = rng.choice((
            f"【{game}】新手入门全攻略 第{episode}期", f"{game}游戏实况 EP{episode}", f"【{game}】这个BOSS我打了三个小时",
            f"【我的世界】生存日记 第{episode}天", f"{game}：全网最详细的配队推荐",
        ))
        tags = [game if "我的世界" not in title else "我的世界", "游戏", rng.choice(("游戏实况", "攻略", "单机游戏", "手机游戏"))]
        description = rng.choice(("本期视频记录了游戏过程", "喜欢的话请一键三连", "直播录像剪辑", "有问题评论区见"))
        return title, description, tags, category, False
    if category == "vlog":
        city = rng.choice(CITIES)
        title = rng.choice((f"【VLOG】在{city}的周末", f"大学生的一天｜{city}", f"独自去{city}旅行的三天", f"{city}citywalk｜吃吃喝喝"))
        tags = ["VLOG", "生活", "日常", rng.choice(("旅行", "记录", "城市", "美食"))]
        description = f"拍摄设备：{rng.choice(GADGETS)}\nBGM：{_song(rng)}"
        return title, description, tags, category, False
    if category == "dance":
        song = rng.choice(DANCE_SONGS)
        title = rng.choice((f"【宅舞】{song}翻跳", f"【{rng.choice(CITIES)}漫展】{song}", f"{song}❤️第一次翻跳"))
        ambiguous = rng.random() < 0.5
        tags = ["舞蹈", "宅舞", "翻跳"] + (["VOCALOID", "初音ミク"] if ambiguous else ["cosplay"])
        description = f"原曲：{song}\n编舞：{rng.choice(PEOPLE)}\n摄影：{rng.choice(PEOPLE)}"
        return title, description, tags, category, ambiguous
    if category == "cooking":
        dish = rng.choice(DISHES)
        title = rng.choice((f"{dish}的家常做法，简单又好吃", f"【教程】十分钟学会{dish}", f"挑战一百元做一桌菜：{dish}"))
        tags = ["美食", "美食制作", "家常菜", "教程"]
        description = f"食材：见视频\n今天做{dish}，记得点赞收藏"
        return title, description, tags, category, False
    if category == "tech":
        gadget = rng.choice(GADGETS)
        title = rng.choice((f"{gadget}深度评测：值不值得买？", f"【开箱】{gadget}上手体验", f"用了三个月的{gadget}，说说优缺点"))
        tags = ["数码", "科技", "评测", rng.choice(("手机", "电脑", "开箱"))]
        description = f"本视频非广告，{gadget}为自费购买"
        return title, description, tags, category, False
    if category == "human-cover":
        singer = rng.choice(HUMAN_SINGERS)
        song = _song(rng)
        ambiguous = rng.random() < 0.45
        if ambiguous:  # a human singing a vocal-synth song
            synth, _ = rng.choice(SYNTH_SINGERS)
            title = rng.choice((f"【{singer}】{song}（原唱：{synth}）【翻唱】", f"【人声翻唱】{song}【{singer}】"))
            tags = ["翻唱", "人声", "音乐", synth, "VOCALOID"]
        else:
            title = rng.choice((f"【{singer}】{song}【翻唱】", f"【翻唱】{song} cover", f"{song}（cover：{rng.choice(PEOPLE)}）"))
            tags = ["翻唱", "音乐", "人声", "流行"]
        description = f"混音：{rng.choice(PEOPLE)}\n后期：{rng.choice(PEOPLE)}\n感谢收听"
        return title, description, tags, category, ambiguous
    if category == "instrumental":
        instrument = rng.choice(INSTRUMENTS)
        song = _song(rng)
        ambiguous = rng.random() < 0.3
        title = rng.choice((f"【{instrument}】{song}", f"{instrument}弹唱《{song}》", f"【原创音乐】{song}｜乐队现场"))
        tags = ["音乐", "演奏", instrument] + (["初音ミク", "V家"] if ambiguous else ["原创音乐", "乐队"])
        note = f"原曲是V家曲，这次用{instrument}演奏" if ambiguous else "纯原创，没有使用任何合成器人声"
        description = f"演奏：{rng.choice(PEOPLE)}\n{note}"
        return title, description, tags, category, ambiguous
    topic = rng.choice(("黑洞", "量子计算", "古代丝绸之路", "咖啡", "记忆力", "睡眠", "AI绘画", "神经网络"))
    title = rng.choice((f"十分钟讲清楚{topic}", f"【科普】{topic}到底是什么？", f"关于{topic}，你可能不知道的事"))
    tags = ["知识", "科普", "学习", topic]
    description = "参考资料见评论区置顶\n如有错误欢迎指正"
    return title, description, tags, "knowledge", False


def _bvid(rng: random.Random, used: set[str]) -> str:
    while True:
        bvid = "BV1" + "".join(rng.choice(BASE58) for _ in range(9))
        if bvid not in used:
            used.add(bvid)
            return bvid


def _uploaders(rng: random.Random, count: int, *, producers: bool) -> list[tuple[int, str]]:
    names: set[str] = set()
    pool = []
    while len(pool) < count:
        if producers:
            name = rng.choice(SONG_WORDS_A + NICK_NOUNS) + rng.choice(("P", "P", "P", "社", "_SynthV", "工作室", "调教组"))
        elif rng.random() < 0.5:
            suffix = rng.choice(UPLOADER_SUFFIXES) if rng.random() < 0.3 else ""
            name = rng.choice(NICK_ADJECTIVES) + rng.choice(NICK_NOUNS) + suffix
        else:
            name = rng.choice(PEOPLE + SONG_WORDS_A + NICK_NOUNS) + rng.choice(UPLOADER_SUFFIXES)
        if name in names:
            name = f"{name}{rng.randint(2, 99)}"
        if name in names:
            continue
        names.add(name)
        pool.append((rng.randint(10_000, 3_999_999_999), name))
    return pool


def default_now() -> datetime:
    """Midnight UTC today: the demo's timestamps are stable within a day."""
    return timezone.now().astimezone(dt_timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def generate_demo_videos(
    *, count: int = DEFAULT_VIDEO_COUNT, seed: int = DEFAULT_SEED, now: datetime | None = None
) -> list[DemoVideo]:
    """``count`` Bilibili-like videos; aids increase with the publication time."""
    if count < 0:
        raise ValueError("count must be ≥ 0")
    now = now or default_now()
    rng = random.Random(seed)
    producers = _uploaders(rng, max(3, count // 25), producers=True)
    others = _uploaders(rng, max(5, count // 6), producers=False)
    offsets = sorted((rng.uniform(0, PUBLISHED_DAYS * 86400) for _ in range(count)), reverse=True)
    used_bvids: set[str] = set()
    aid = BASE_AID + rng.randint(0, 9_999_999)
    videos = []
    for offset in offsets:
        aid += rng.randint(1, 40_000)
        in_scope = rng.random() < IN_SCOPE_SHARE
        if in_scope:
            title, description, tags, category = _in_scope_video(rng)
            ambiguous = rng.random() < 0.08  # e.g. a synth cover tagged like a human cover
            duration = rng.randint(120, 330)
            mid, name = rng.choice(producers) if rng.random() < 0.85 else rng.choice(others)
        else:
            title, description, tags, category, ambiguous = _out_of_scope_video(rng)
            duration = rng.randint(15, 60) if rng.random() < 0.15 else rng.randint(60, 2400)
            mid, name = rng.choice(others)
        published_at = now - timedelta(seconds=round(offset))
        record = {
            "aid": aid,
            "bvid": _bvid(rng, used_bvids),
            "title": title,
            "desc": description,
            "tags": list(dict.fromkeys(tags)),
            "owner": {"mid": mid, "name": name},
            "pubdate": int(published_at.timestamp()),
            "duration": duration,
            "pic": f"https://i0.hdslb.com/bfs/archive/{rng.getrandbits(160):040x}.jpg",
            "demo": {"in_scope": in_scope, "category": category},
        }
        videos.append(DemoVideo(record=record, in_scope=in_scope, category=category, ambiguous=ambiguous))
    return videos


# --- labels -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedLabel:
    aid: int
    username: str
    value: bool
    created_at: datetime
    retracted_at: datetime | None = None


@dataclass(frozen=True)
class PlannedReview:
    aid: int
    value: bool
    created_at: datetime
    note: str


def plan_demo_labels(
    videos: list[DemoVideo], *, seed: int = DEFAULT_SEED, now: datetime | None = None
) -> tuple[list[PlannedLabel], list[PlannedReview]]:
    """Who labels what, when, and which conflicts the reviewer resolves. Deterministic."""
    now = now or default_now()
    rng = random.Random(f"labels-{seed}")
    labels: list[PlannedLabel] = []
    reviews: list[PlannedReview] = []
    usernames = list(DEMO_LABELERS)
    window = LABEL_DAYS * 86400
    for video in videos:
        if rng.random() >= LABELED_SHARE:
            continue
        effective: list[bool] = []
        last = now - timedelta(days=LABEL_DAYS)
        for username in rng.sample(usernames, rng.choice((2, 2, 3))):
            accuracy = DEMO_LABELERS[username] - (0.2 if video.ambiguous else 0.0)
            value = video.in_scope if rng.random() < accuracy else not video.in_scope
            at = now - timedelta(seconds=rng.uniform(3600, window))
            if rng.random() < UNDO_SHARE:  # a slip, undone a few seconds later, then the real answer
                slip_at = at - timedelta(seconds=rng.uniform(30, 600))
                undone_at = slip_at + timedelta(seconds=rng.uniform(1, 8))
                labels.append(PlannedLabel(video.aid, username, not value, slip_at, undone_at))
            if rng.random() < CHANGED_MIND_SHARE:  # answered differently first, changed their mind later
                first_at = at - timedelta(seconds=rng.uniform(3600, 10 * 86400))
                labels.append(PlannedLabel(video.aid, username, not value, first_at))
            labels.append(PlannedLabel(video.aid, username, value, at))
            effective.append(value)
            last = max(last, at)
        if len(set(effective)) > 1 and rng.random() < REVIEWED_CONFLICT_SHARE:
            at = min(now, last + timedelta(seconds=rng.uniform(600, 3 * 86400)))
            note = rng.choice(("", "", "看了PV，确认是合成器演唱", "人声翻唱，不算", "标签有误导性", "听了原曲确认"))
            reviews.append(PlannedReview(video.aid, video.in_scope, at, note))
    return labels, reviews


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _set_created_at(model, rows: list[tuple[int, datetime]]) -> None:
    """``created_at`` is ``auto_now_add`` (bulk_create overwrites it): one UPDATE per chunk."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        for chunk in _chunks(rows, 5000):
            cursor.execute(
                f"UPDATE {table} AS t SET created_at = v.created_at "
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, created_at) WHERE t.id = v.id",
                [[pk for pk, _ in chunk], [at for _, at in chunk]],
            )


def _demo_users() -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The demo labelers and reviewer; new ones get a random password (returned, never stored)."""
    user_model = get_user_model()
    labelers = Group.objects.get_or_create(name=LABELERS)[0]
    reviewers = Group.objects.get_or_create(name=REVIEWERS)[0]
    users: dict[str, Any] = {}
    new_users: list[tuple[str, str]] = []
    for username, group in [*((name, labelers) for name in DEMO_LABELERS), (DEMO_REVIEWER, reviewers)]:
        user = user_model.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(9)
            user = user_model.objects.create_user(username=username, password=password)
            new_users.append((username, password))
        user.groups.add(group)
        users[username] = user
    return users, new_users


# --- loading ----------------------------------------------------------------------------


@transaction.atomic
def load_demo_data(
    *,
    videos: int = DEFAULT_VIDEO_COUNT,
    seed: int = DEFAULT_SEED,
    if_empty: bool = False,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> DemoResult:
    """Upsert the demo videos and (once) the demo labeling activity. Safe to run twice."""
    if if_empty and Video.objects.exists():
        return DemoResult(skipped=True)
    now = now or default_now()
    demo_videos = generate_demo_videos(count=videos, seed=seed, now=now)
    result = DemoResult()
    result.videos = import_video_records(records=[video.record for video in demo_videos], progress=progress)
    users, result.new_users = _demo_users()

    if Label.objects.filter(user__in=users.values()).exists():
        result.labels_skipped = True
    else:
        planned_labels, planned_reviews = plan_demo_labels(demo_videos, seed=seed, now=now)
        aids = sorted({label.aid for label in planned_labels})
        video_ids: dict[int, int] = {}
        for chunk in _chunks(aids, 5000):
            video_ids.update(Video.objects.filter(aid__in=chunk).values_list("aid", "id"))
        planned_labels = [label for label in planned_labels if label.aid in video_ids]
        planned_reviews = [review for review in planned_reviews if review.aid in video_ids]
        labels = Label.objects.bulk_create(
            [
                Label(
                    video_id=video_ids[label.aid],
                    user=users[label.username],
                    value=label.value,
                    source=LabelSource.HUMAN,
                    retracted_at=label.retracted_at,
                )
                for label in planned_labels
            ],
            batch_size=WRITE_CHUNK,
        )
        _set_created_at(Label, [(label.pk, planned.created_at) for label, planned in zip(labels, planned_labels)])
        reviewer = users[DEMO_REVIEWER]
        reviews = Review.objects.bulk_create(
            [
                Review(video_id=video_ids[review.aid], reviewer=reviewer, value=review.value, note=review.note)
                for review in planned_reviews
            ],
            batch_size=WRITE_CHUNK,
        )
        _set_created_at(Review, [(review.pk, planned.created_at) for review, planned in zip(reviews, planned_reviews)])
        result.labels_created = len(labels)
        result.labeled_videos = len({label.aid for label in planned_labels})
        result.reviews_created = len(reviews)
    result.inconsistent_videos = VideoConsensus.objects.filter(is_inconsistent=True).count()
    return result
