/** The help text, and the one-shot dialogs that show it: `help` (the fallback) and `welcome` (on subscribe). */
import { defineDialog, text } from '../src/index.js';

export const HELP_TEXT =
  '这个公众号是wechat-dialog项目的demo，可以用编写命令行程序的体验来编写公众号深度会话\n' +
  '源代码在GITHUB上,输入"github"（全小写）可以获得链接\n\n' +
  '共有三个DEMO：\n' +
  '- 回复"累加器"玩一玩累加，这是基本功能\n' +
  '- 回复"会话记录"看一下如何防止数据重复写入\n' +
  '- 回复"会话菜单"了解如何静默切换会话逻辑';

/** Shows the help text. Returns at once: no state is kept. */
export const help = defineDialog('help', function* () {
  return text(HELP_TEXT);
});

/** Greets a new follower (subscribe event, with or without a `qrscene_` EventKey). */
export const welcome = defineDialog('welcome', function* () {
  return text(`感谢关注！\n${HELP_TEXT}`);
});
