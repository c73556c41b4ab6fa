"""Urgency cues per language: churn, complaints, safety, fraud and callback requests, with
evidence offsets into the original text (ZWNJ, Arabic letter variants, harakat)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxnlp.text.urgency import fold, fold_with_offsets, is_urgent, score_urgency


@pytest.mark.parametrize(
    ("lang", "text", "cue"),
    [
        ("en", "Cancel my subscription today, I am done with you", "churn"),
        ("en", "I got food poisoning here at the buffet.", "safety"),
        ("en", "Please have someone call me back about my refund", "callback"),
        ("en", "I will be contacting my lawyer about this charge", "complaint"),
        ("fa", "حسابمو میبندم", "churn"),
        ("fa", "حسابمو می‌بندم", "churn"),
        ("fa", "حسابمو می بندم", "churn"),
        ("fa", "دیگه از این فروشگاه خرید نمیکنم", "churn"),
        ("fa", "پول از حسابم کم شد ولی شارژ نشد", "fraud"),
        ("fa", "پشتیبانی هیچ جوابی نمیده، کسی جوابگو نیست", "callback"),
        ("ar", "سألغي اشتراكي", "churn"),
        ("ar", "سَأُلْغِي اشتراكي", "churn"),
        ("ar", "أول وآخر مرة", "churn"),
        ("ar", "تسممت من الأكل", "safety"),
        ("ar", "ولا احد يرد على الهاتف", "callback"),
        # families added after the first held-out set was read (issue 28)
        ("en", "I don't think we'll ever come back here", "churn"),
        ("en", "please Cancelled Flight my reservation, I booked with another carrier", "churn"),
        ("en", "can you DM me about my lost bag?", "callback"),
        ("en", "They lost my suitcase on the way to Denver", "fraud"),
        ("en", "I can't even get through to a human on your line", "callback"),
        ("fa", "به هیچ عنوان دیگه از این فروشگاه خرید نمیکنیم", "churn"),
        ("fa", "اگه درست نشه با یه بانک دیگه کار میکنم", "churn"),
        ("fa", "دیگه به این فروشگاه اعتماد ندارم", "churn"),
        ("fa", "مبلغ از حسابم کسر کرده ولی به مقصد نرسیده", "fraud"),
        ("fa", "سه بار پول کسر شد", "fraud"),
        ("fa", "پولمو پس بدید", "fraud"),
        ("fa", "بانک به ایمیلم جواب نداد", "callback"),
        ("fa", "زنگ زدم رستوران گوشی رو قطع کرد", "callback"),
        ("fa", "سفارشم ناقص بود اسنپ فود لطفا پیگیری کنید", "callback"),
        ("ar", "ما راح ارجع لهم مرة ثانية", "churn"),
        ("ar", "مش هرجع المحل ده تاني", "churn"),
        ("ar", "والله ما ابغى اكرر التجربة", "churn"),
        ("ar", "لن أعاود زيارة هذا الفرع", "churn"),
        ("ar", "ومن بعدها ما عدت رحت لهم", "churn"),
        ("ar", "سأمكث في فندق آخر المرة القادمة", "churn"),
        ("ar", "الموظف سرق جوالي من الغرفة", "fraud"),
        ("ar", "اشتكيت لخدمة العملاء ولا يعاودون الاتصال", "callback"),
        ("ar", "لما اتصلت ما حد رد علي", "callback"),
        # families added after heldout2 was read (heldout3 round)
        ("en", "I have cancelled my trip, done with this", "churn"),
        ("en", "we flew with another airline this time", "churn"),
        ("en", "you will receive a formal complaint from me", "complaint"),
        ("en", "Classic bait and switch on the fares", "fraud"),
        ("en", "had to buy a new ticket on my own dime", "fraud"),
        ("en", "Nobody picks up at the baggage office", "callback"),
        ("en", "the agents won't answer the phone", "callback"),
        ("en", "I left 3 voicemails already", "callback"),
        ("en", "just sent you a DM with my confirmation code", "callback"),
        ("en", "could you be of any assistance with my connection", "callback"),
        ("en", "was never able to speak to someone at the desk", "callback"),
        ("fa", "ترجیح میدم بانکمو عوض کنم", "churn"),
        ("fa", "از این به بعد جاهای دیگه سفارش میدم", "churn"),
        ("fa", "وقتشه از این اپ خداحافظی کنم", "churn"),
        ("fa", "کل موجودیمو از این بانک برداشتم", "churn"),
        ("fa", "اولین و آخرین خریدم بود", "churn"),
        ("fa", "لطفا جواب دهید", "callback"),
        ("fa", "رمزم قفل شده چیکار باید بکنم", "callback"),
        ("fa", "شعبه هم پاسخگو نیست", "callback"),
        ("fa", "چرا پیگیری نمیکنین؟", "callback"),
        ("fa", "پنج بار تیکت زدم", "callback"),
        ("fa", "یک ساعت پشت خط معطل شدم", "callback"),
        ("fa", "خرید ناموفق بود و پولمو کسر کرد", "fraud"),
        ("fa", "هر ماه بیخودی کسر میکنن", "fraud"),
        ("fa", "ازحسابم برداشت شده", "fraud"),
        ("fa", "حسابی سرمون کلاه گذاشتن", "fraud"),
        ("ar", "مش ممكن ارجع لهالمطعم مرة تانية", "churn"),
        ("ar", "قررت عدم العودة لهذا الفندق", "churn"),
        ("ar", "الخضار كانت خربانة", "safety"),
        # families added after heldout3 (spent) and train4 were read (train4 round)
        ("en", "Delayed three times this month. #NeverAgain", "churn"),
        ("en", "They will never see another penny from me", "churn"),
        ("en", "I won't be ordering from this seller again", "churn"),
        ("en", "Last time shopping with you", "churn"),
        ("en", "Keep this up and you're losing customers", "churn"),
        ("en", "Stranded again, I'm going back to Delta", "churn"),
        ("en", "My whole family felt sick the rest of the night", "safety"),
        ("en", "The manager said he would call the exterminator", "safety"),
        ("en", "Are you paying for my hotel tonight?", "fraud"),
        ("en", "Still have yet to see my refund", "fraud"),
        ("en", "On hold again, this is the third time", "callback"),
        ("en", "Been trying to reach an agent since noon", "callback"),
        ("en", "All agents busy, call later, every single time", "callback"),
        ("en", "How do I contact you about my seat?", "callback"),
        ("en", "Been waiting two weeks for a reply", "callback"),
        ("fa", "این شد آخرین سفارش من از این رستوران", "churn"),
        ("fa", "موجودیمو میریزم تو یه حساب دیگه", "churn"),
        ("fa", "اگه درست نشه با همراه بانک های دیگه کار میکنم", "churn"),
        ("fa", "دیگه غلط بکنم از اینجا بخرم", "churn"),
        ("fa", "تصمیم گرفتم دیگه از این فروشگاه خرید نکنم", "churn"),
        ("fa", "به خاطر آلرژی نتونستم بخورم", "safety"),
        ("fa", "کیف پول رو شارژ کردم ولی نمیتونم ازش استفاده کنم", "fraud"),
        ("fa", "گارانتی هم پاسخ گو نیست", "callback"),
        ("fa", "یکی نیست رسیدگی کنه؟", "callback"),
        ("fa", "الان چیکار باید کرد؟", "callback"),
        ("fa", "دو بار به شعبه مراجعه کردم", "callback"),
        ("ar", "اكلت عندهم مرة وكانت اخر مرة", "churn"),
        ("ar", "ما احب اكرر التجربة معهم", "churn"),
        ("ar", "توبه ارجع لهم", "churn"),
        ("ar", "لا أتوقع أن أعود له", "churn"),
        ("ar", "لقيت حشر صغير في الاكل", "safety"),
        ("ar", "اتسممت من الشاورما", "safety"),
        ("ar", "السمك كان مزنخ", "safety"),
        ("ar", "الموظفين كذابين", "fraud"),
        ("ar", "اتمنى الرد بأسرع وقت", "callback"),
        ("ar", "قدمت شكوى ولم يتم الرد", "callback"),
    ],
)
def test_urgency_cue_found_with_original_offsets(lang, text, cue):
    result = score_urgency(text, lang, {})
    assert is_urgent(result), result
    hits = [e for e in result["evidence"] if e["cue"] == cue]
    assert hits, result["evidence"]
    for e in result["evidence"]:
        assert text[e["start"] : e["end"]] == e["text"]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "I can not wait to go there again"),
        ("en", "Would definitely order again, lovely staff"),
        ("en", "My flight was Cancelled Flightled, rebooked fine"),
        ("fa", "غذا سرد بود و دیر رسید"),
        ("fa", "برنامه خوبیه فقط لطفا سرعتش رو بیشتر کنید"),
        ("ar", "الموظف ودود جدا"),
        ("ar", "اكيد ما بتكون اول و اخر مرة"),
        ("ar", "الطعام في منتهى الروعة"),
        # guards: advice, an app that "does not answer" (= does not work), "until" + ما, prices as "theft"
        ("en", "Rep was rude and didn't even try to help!"),
        ("en", "No one can say they don't care about their fans"),
        ("fa", "هرگز پیشنهاد نمیکنم"),
        ("fa", "بعد از بروزرسانی دیگر جوابگو نیست"),
        ("fa", "روی این مدل ماشین جواب نداد"),
        ("fa", "برنامه بسته میشه لطفا پیگیری کنید"),
        ("fa", "پول زیادی دادم ولی حجم غذا کم بود"),
        ("ar", "بدك ساعة حتى ما يرد عليك حدا"),
        ("ar", "بطيئين في الرد على الطلبات"),
        ("ar", "قمة السرقه في اسعار الخضار"),
        ("ar", "يستخدموه بشكل غير صحيح"),
        ("ar", "آخر مرة اشتريت منهم كان عليها عرض"),
        ("ar", "راح ارجع له اكيد"),
        ("ar", "مستحيل اروح مكان غيره"),
        # "لما" (when) is not ل + the negation ما
        ("ar", "لما بدي ارجع عالبيت بمر عليهم"),
        ("ar", "لما يردوا بكون الموضوع انحل"),
        # guards added in the heldout3 round: a product that helps, "of no help", a known fee, "got results" from a
        # product, burnt food, praise for not needing the ATM, a bank-app bug asking for guidance, plagiarism
        ("en", "I bought this to help me learn to cook"),
        ("en", "the manual is of no help to beginners"),
        ("en", "I can't speak highly enough of the crew"),
        ("fa", "برای گرفتن گردش حساب پول کسر میکنه"),
        ("fa", "هنوز نتیجه خاصی نگرفتم از این کرم"),
        ("fa", "برنج ته دیگش بوی سوختگی میداد"),
        ("fa", "با این برنامه دیگه عابربانک نمیرم"),
        ("fa", "برنامه باز نمیشه لطفا راهنمایی بفرمایید"),
        ("ar", "هذا الموقع يقوم بسرقة المحتوى من غيره"),
        ("ar", "عمري ما مرضت من اكلهم"),
        # guards added in the train4 round: thanks for the help, a raise ASAP, sick on another day, a counter
        # holding food, a call that got through; "honestly", a central-bank decree, an app reinstalled, "I did not
        # follow up", a known SMS fee, calls to the courier; appointments (مواعيد), "after" + ما, "we would never
        # say it is the last time", "it won't be the last time", outdoor insects, "not cheats", "I won't hesitate"
        ("en", "Thanks for the help!"),
        ("en", "Give that agent a raise ASAP"),
        ("en", "I was sick that day anyway, so I skipped it"),
        ("en", "the counter was holding 12 pastries"),
        ("en", "got to speak to someone and it was fixed"),
        ("fa", "خدا وکیلی غذاش عالی بود"),
        ("fa", "طبق مصوبه بانک مرکزی کارمزد کم میشه"),
        ("fa", "برنامه رو حذف کردم دوباره نصب کردم درست شد"),
        ("fa", "خودم پیگیری نکردم چون دیر بود"),
        ("fa", "هزینه پیامک هر ماه از حسابم کسر میشه"),
        ("fa", "پیک آدرس رو پیدا نکرد و سه بار تماس گرفتم"),
        ("ar", "مواعيدهم منتظمه واسعارهم معقوله"),
        ("ar", "بعد ما ارجع من السفر بحكيلكم"),
        ("ar", "مطعم رائع مستحيل نقول آخر مرة"),
        ("ar", "ما رح تكون آخر مرة آكل عندهم"),
        ("ar", "الجلسات الخارجية فيها حشرات بالليل"),
        ("ar", "مو غشاشين ولا نصابين"),
        ("ar", "ما اتردد اكرر التجربة"),
    ],
)
def test_urgency_not_raised_without_a_cue(lang, text):
    result = score_urgency(text, lang, {"negative": 0.99})
    assert not is_urgent(result), result
    assert result["score"] <= 0.4


def test_negative_probability_raises_score_but_a_cue_is_needed_for_high():
    calm = score_urgency("cold food, slow courier", "en", {"negative": 0.0})
    angry = score_urgency("cold food, slow courier", "en", {"negative": 1.0})
    assert calm["score"] < angry["score"] and angry["level"] == "low"
    cue_pos = score_urgency("I will cancel my account", "en", {"negative": 0.05})
    cue_neg = score_urgency("I will cancel my account", "en", {"negative": 0.95})
    assert cue_pos["score"] < cue_neg["score"] and cue_neg["level"] == "high"


def test_fold_maps_every_character_back():
    text = "مـــيــ‌بندم  الْكِتَاب ي ك"
    folded, where = fold_with_offsets(text)
    assert len(folded) == len(where) and where == sorted(where)
    assert "\u200c" not in folded and "ـ" not in folded


def test_blank_text_has_no_urgency():
    assert score_urgency("   ", "en", {"negative": 1.0}) == {
        "score": 0.0,
        "level": "none",
        "evidence": [],
    }


@pytest.mark.parametrize(
    ("which", "min_urgent"), [("heldout2", 40), ("heldout3", 35), ("heldout4", 45)]
)
def test_urgency_heldout_set_shares_no_text_with_a_tuned_or_browsed_set(which, min_urgent):
    """A held-out set must not hold a text of any other set the cues were tuned on or that was read
    while tuning them (the other urgency sets, hard cases, topic labels and topic sets); what
    `training/eval/sample_urgency_heldout<N>.py` leaves out, restated here without its heavy imports.
    heldout2 was drawn before heldout3, so only heldout3 is checked against heldout2; heldout4 is
    checked against every other set (train4 included, drawn beside it from the other md5 half)."""
    root = Path(__file__).resolve().parents[1] / "training"

    def texts(path: Path) -> set[str]:
        with path.open(encoding="utf-8") as lines:
            return {" ".join(json.loads(line)["text"].split()) for line in lines if line.strip()}

    for lang in ("fa", "ar", "en"):
        path = root / "eval" / f"urgency_{which}_{lang}.jsonl"
        rows = [json.loads(line) for line in path.open(encoding="utf-8")]
        assert len(rows) >= 145 and sum(r["urgent"] for r in rows) >= min_urgent
        assert all(isinstance(r["urgent"], bool) and r["set"] == which for r in rows)
        assert all(r.get("reason") for r in rows if r["urgent"])
        assert len({r["id"] for r in rows}) == len(rows)
        drawn = {fold(r["text"]) for r in rows}
        others = [
            *(root / "eval").glob(f"urgency_*{lang}.jsonl"),
            *(root / "eval").glob(f"topics_*{lang}.jsonl"),
            *(root / "hard_cases").glob(f"*{lang}.jsonl"),
            *(root / "topic_labels").glob(f"*{lang}.jsonl"),
        ]
        later = ("heldout3",) if which == "heldout2" else ()
        others = [p for p in others if which not in p.name and not any(x in p.name for x in later)]
        assert len(others) >= 6
        for other in others:
            assert not drawn & {fold(t) for t in texts(other)}, other.name
        second = [
            json.loads(line)
            for line in (root / "eval" / f"urgency_{which}_second_pass_{lang}.jsonl").open(
                encoding="utf-8"
            )
        ]
        assert len(second) >= len(rows) // 10 and {r["id"] for r in second} <= {
            r["id"] for r in rows
        }
