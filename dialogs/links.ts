/** `github`: a one-article news (图文) reply with the original project's source link. */
import { defineDialog, news } from '../src/index.js';

export const links = defineDialog('links', function* () {
  return news([
    {
      Title: '项目源码',
      Description: 'github上的项目源码，喜欢的话顺手点个STAR吧(๑•ᴗ•๑)',
      PicUrl: 'https://help.github.com/assets/images/site/be-social.gif',
      Url: 'https://github.com/arthurmmm/wechat-dialog',
    },
  ]);
});
