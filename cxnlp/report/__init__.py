"""Reports on classified exports: the summary dict (`summary`), prevalence-corrected shares
(`quantification`), alerts on the last period (`alerts`), topic rollups (`topics`), NPS / CSAT /
CES (`scores`), the statistics they share (`stats`), the HTML page (`html`) and the whole
workflow of `cxnlp report` as one call (`build`)."""
